// Placeholder until the generator lands; replaced by the data helper.
#include "hax/cli/commands.h"

namespace hax::cli {
void register_gen_commands(CLI::App& app) { app.add_subcommand("gen", "Generate synthetic task datasets"); }
}  // namespace hax::cli
