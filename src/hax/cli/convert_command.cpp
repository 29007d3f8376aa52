// hax convert: Hugging Face checkpoints to hax checkpoints and back (training/hf_checkpoint.h). --from-hf reads a
// MambaForCausalLM / Mamba2ForCausalLM folder (or mamba_ssm's MambaLMHeadModel saved as safetensors) and writes a hax
// checkpoint folder; --to-hf writes a hax checkpoint as a folder transformers loads. The input is read and checked
// whole before the output folder is written (beside its place, then renamed).
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "hax/cli/commands.h"
#include "hax/cli/progress.h"
#include "hax/engine/error.h"
#include "hax/training/checkpoint.h"
#include "hax/training/hf_checkpoint.h"

namespace hax::cli {
namespace {

namespace fs = std::filesystem;

struct ConvertCommand {
  std::string from_hf, to_hf, out;
  bool force = false;
};

// An existing, non-empty --out is replaced only with --force; the input is never the output.
void check_output(const ConvertCommand& c, const std::string& input) {
  std::error_code ec;
  check(!fs::equivalent(input, c.out, ec), "--out '", c.out, "' is the input folder");
  const bool occupied = fs::exists(c.out) && !(fs::is_directory(c.out) && fs::is_empty(c.out));
  check(!occupied || c.force, "--out '", c.out, "' exists; pass --force to replace it");
  check(!occupied || fs::is_directory(c.out), "--out '", c.out, "' is a file, not a folder");
}

std::string summary(const models::Model& model) {
  const models::ModelConfig& c = model.config();
  return cat(c.model_type, ", ", c.num_hidden_layers, " layers, hidden ", c.hidden_size, ", vocab ", c.vocab_size,
             ", ", model.params().num_parameters(), " parameters, ",
             c.untied_lm_head ? "separate lm_head" : "tied output layer");
}

void run_convert(const ConvertCommand& c) {
  const bool from_hf = !c.from_hf.empty();
  const std::string& input = from_hf ? c.from_hf : c.to_hf;
  check_output(c, input);
  std::unique_ptr<Progress> bar;  // made once the total is known; draws on a terminal only
  const auto model = from_hf ? training::load_hf_model(input, [&](std::uint64_t done, std::uint64_t total) {
    if (!bar) bar = std::make_unique<Progress>("read", total, "params");
    bar->update(done);
  }) : training::load_model(input);
  if (bar) bar->finish();
  if (from_hf)
    training::save_model(c.out, *model);
  else
    training::save_hf_model(c.out, *model);
  // Only now: a refused conversion prints its error line alone.
  std::cerr << "hax convert: read " << input << " (" << summary(*model) << ")\nhax convert: wrote "
            << (from_hf ? "hax checkpoint " : "Hugging Face checkpoint ") << c.out << "\n";
}

void register_convert(CLI::App& app) {
  auto* command = app.add_subcommand("convert", "Convert Hugging Face Mamba / Mamba2 checkpoints to hax and back");
  command->footer(
      "--from-hf DIR: a folder with config.json and model.safetensors (or model.safetensors.index.json and its\n"
      "shards) of transformers' MambaForCausalLM (model_type \"mamba\", e.g. state-spaces/mamba-130m-hf) or\n"
      "Mamba2ForCausalLM (\"mamba2\", n_groups 1), or of mamba_ssm's MambaLMHeadModel (d_model, n_layer, ssm_cfg).\n"
      "Tensors may be F32, F16 or BF16 (hax computes in float32). A separate lm_head.weight that differs from the\n"
      "embedding (tie_word_embeddings false) becomes hax's untied output layer (\"hax_untied_lm_head\": true).\n"
      "--to-hf DIR: a hax checkpoint folder of a plain Mamba or Mamba2 model (no sparse attention: transformers\n"
      "has no such layer), written for transformers in F32 with \"architectures\" and \"model_type\" set.\n"
      "Bad input (missing files or tensors, extra tensors, wrong shapes, settings hax does not compute) is an\n"
      "error naming the file; nothing is written then.");
  auto c = std::make_shared<ConvertCommand>();
  auto* from = command->add_option("--from-hf", c->from_hf, "Hugging Face checkpoint folder to read");
  auto* to = command->add_option("--to-hf", c->to_hf, "hax checkpoint folder to write in Hugging Face layout");
  from->excludes(to);
  command->add_option("--out,-o", c->out, "Output folder (a hax checkpoint for --from-hf, a Hugging Face one for "
                                          "--to-hf)")->required();
  command->add_flag("--force", c->force, "Replace --out if it exists");
  command->callback([c] {
    check(!c->from_hf.empty() || !c->to_hf.empty(), "hax convert needs --from-hf DIR or --to-hf DIR (see --help)");
    run_convert(*c);
  });
}

}  // namespace

void register_convert_commands(CLI::App& app) { register_convert(app); }

}  // namespace hax::cli
