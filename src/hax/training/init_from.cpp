#include "hax/training/init_from.h"

#include <algorithm>

#include "hax/engine/error.h"
#include "hax/models/model_params.h"

namespace hax::training {
namespace {

// The config with the options an --init-from run may change reset to their defaults.
nlohmann::json shape_defining_keys(models::ModelConfig c) {
  const models::ModelConfig defaults;
  c.seed = defaults.seed;
  c.sparse_arch.clear();  // to_json() leaves every sparse key out of a config without a sparse arch
  return c.to_json();
}

// Copies `from`'s tensor of the same name into `to` wherever both stores have it.
void copy_shared_tensors(const ParamStore& from, ParamStore& to) {
  for (const TensorInfo& t : to.tensors()) {
    if (!from.contains(t.name) || from.info(t.name).shape != t.shape) continue;
    const auto values = from.param(t.name);
    std::copy(values.begin(), values.end(), to.param(t.name).begin());
  }
}

// K from B and Q from C (paper.md §3.5), E = 1, in every layer of a Mamba that gained a sparse branch.
void init_sparse_from_ssm(const ParamStore& from, ParamStore& to, const models::ModelConfig& c) {
  const std::size_t N = c.state_size, R = c.time_step_rank, I = c.intermediate_size;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string m = models::layer_mixer_prefix(l);
    const auto x_proj = from.param(m + "x_proj.weight");  // (R + 2N, I): dt | B | C
    const auto xx_proj = to.param(m + "xx_proj.weight");  // (2N, I): K | Q
    std::copy(x_proj.begin() + R * I, x_proj.begin() + (R + 2 * N) * I, xx_proj.begin());
    const auto E = to.param(m + "E");
    std::fill(E.begin(), E.end(), 1.0f);
  }
}

}  // namespace

void check_init_from_config(const models::ModelConfig& loaded, const models::ModelConfig& target,
                            const std::string& where) {
  const nlohmann::json a = shape_defining_keys(loaded), b = shape_defining_keys(target);
  std::string differences;
  for (const auto& [key, value] : b.items()) {
    const auto old = a.find(key);
    if (old == a.end() || *old != value)
      differences += cat(differences.empty() ? "" : ", ", key, " ", old == a.end() ? "(absent)" : old->dump(),
                         " -> ", value.dump());
  }
  for (const auto& [key, value] : a.items())
    if (!b.contains(key)) differences += cat(differences.empty() ? "" : ", ", key, " ", value.dump(), " -> (absent)");
  check(differences.empty(), where, ": --init-from keeps the checkpoint's model and may change only the sparse "
        "options (--sparse-arch, --sparse-keys, --num-hash, --semantics, ...) and the seed, but the new config "
        "changes ", differences);
  check(!(target.is_mamba2() && target.has_sparse() && !loaded.has_sparse()), where,
        ": adding a sparse branch to a plain Mamba2 is not supported: the paper initializes K and Q from Mamba's "
        "x_proj (B and C), and Mamba2 has none (its B and C pass through the conv first); train the Mamba2 with the "
        "sparse arch from scratch instead");
}

std::unique_ptr<models::Model> init_from(const models::Model& loaded, const models::ModelConfig& target,
                                         const std::string& where) {
  check_init_from_config(loaded.config(), target, where);
  auto model = std::make_unique<models::Model>(target);
  copy_shared_tensors(loaded.params(), model->params());
  copy_shared_tensors(loaded.buffers(), model->buffers());
  if (target.has_sparse() && !loaded.config().has_sparse())
    init_sparse_from_ssm(loaded.params(), model->params(), target);
  return model;
}

}  // namespace hax::training
