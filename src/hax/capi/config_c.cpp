// hax_model_config_json: a config.json read and checked by the engine's own reader (models/config.h), so that other
// languages get hax's defaults and refusals without a second copy of the rules.
#include <algorithm>
#include <string>

#include "hax/capi/capi_support.h"
#include "hax/capi/hax_c.h"
#include "hax/models/config.h"

extern "C" {

int64_t hax_model_config_json(const char* path, char* out, size_t capacity) {
  std::string text;
  if (hax::capi::guarded("model config", [&] {
        hax::capi::require(path, "path");
        text = hax::models::ModelConfig::load(path).to_json().dump();
      }) != 0)
    return -1;
  if (out && text.size() < capacity) std::copy_n(text.c_str(), text.size() + 1, out);
  return static_cast<int64_t>(text.size());
}

}  // extern "C"
