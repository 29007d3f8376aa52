// hax: one binary, one subcommand per job. Errors a user can cause end here as one line on stderr and exit 1.
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "hax/cli/commands.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"

int main(int argc, char** argv) {
  hax::restart_with_short_thread_spin(argv);
  CLI::App app{"hax: state-space models with context-dependent sparse attention (HAX), on the CPU"};
  app.set_version_flag("--version", "hax 0.1.0");
  app.require_subcommand(1);
  hax::cli::register_gen_commands(app);
  hax::cli::register_data_commands(app);
  hax::cli::register_train_commands(app);
  hax::cli::register_bench_commands(app);
  hax::cli::register_eval_commands(app);
  hax::cli::register_logits_commands(app);
  hax::cli::register_inference_commands(app);
  hax::cli::register_sweep_commands(app);
  hax::cli::register_lm_commands(app);
  hax::cli::register_convert_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, like every other error: what was wrong, and where to look.
    std::cerr << "hax: error: " << e.what() << " (see --help)\n";
    return e.get_exit_code();
  } catch (const hax::Error& e) {
    std::cerr << "hax: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "hax: internal error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
