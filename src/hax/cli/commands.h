// Each subcommand group registers itself on the root CLI11 app; main() only parses and reports errors.
#pragma once

#include <CLI/CLI.hpp>

namespace hax::cli {

void register_gen_commands(CLI::App& app);  // hax gen joint-recall | mqar  (gen_command.cpp)
void register_data_commands(CLI::App& app);  // hax data info | cat  (data_command.cpp)
void register_train_commands(CLI::App& app);  // hax train | eval  (train_command.cpp)

}  // namespace hax::cli
