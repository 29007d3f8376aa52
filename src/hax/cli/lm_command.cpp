// hax lm: real-text language models. The subcommands live in their own files and register themselves here.
#include "hax/cli/commands.h"

namespace hax::cli {

void register_lm_commands(CLI::App& app) {
  CLI::App* lm = app.add_subcommand("lm", "Language models on real text: prepare a corpus, train, evaluate");
  lm->require_subcommand(1);
  register_lm_prepare_commands(*lm);
  register_lm_train(*lm);
  register_lm_eval_command(*lm);
}

}  // namespace hax::cli
