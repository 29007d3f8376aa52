// Each subcommand group registers itself on the root CLI11 app; main() only parses and reports errors.
#pragma once

#include <CLI/CLI.hpp>

namespace hax::cli {

void register_gen_commands(CLI::App& app);  // hax gen joint-recall | mqar  (gen_command.cpp)
void register_data_commands(CLI::App& app);  // hax data info | cat  (data_command.cpp)
void register_train_commands(CLI::App& app);  // hax train  (train_command.cpp)
void register_eval_commands(CLI::App& app);  // hax eval  (eval_command.cpp)
void register_logits_commands(CLI::App& app);  // hax logits  (logits_command.cpp)
void register_inference_commands(CLI::App& app);  // hax score | generate  (inference_command.cpp)
void register_sweep_commands(CLI::App& app);  // hax sweep  (sweep_command.cpp)
void register_lm_commands(CLI::App& app);  // hax lm prepare | train | eval  (lm_command.cpp)
void register_convert_commands(CLI::App& app);  // hax convert --from-hf | --to-hf  (convert_command.cpp)
void register_bench_commands(CLI::App& app);  // hax bench train-step | sparse-layer  (bench_command.cpp)
// hax lm prepare | tokenize | detokenize (lm_prepare_command.cpp), registered by register_lm_commands on `lm`.
void register_lm_prepare_commands(CLI::App& lm);
// hax lm train (lm_train_command.cpp), registered by register_lm_commands on its `lm` group.
void register_lm_train(CLI::App& lm);
// hax lm eval (lm_eval_command.cpp), likewise.
void register_lm_eval_command(CLI::App& lm);
// hax bench sparse-layer (bench_sparse_layer.cpp), registered by register_bench_commands on its `bench` group.
void register_sparse_layer_bench(CLI::App& bench);
// hax bench decode (bench_decode.cpp), likewise.
void register_decode_bench(CLI::App& bench);

}  // namespace hax::cli
