#include "hax/training/experiment.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "hax/engine/error.h"
#include "hax/io/known_keys.h"
#include "hax/ops/sparse/sparse_keys.h"

namespace hax::training {
namespace {

using nlohmann::json;

const std::vector<std::string> kTopKeys = {"name", "bases", "sparse_archs", "semantics", "same_under_both_semantics",
                                           "seeds", "train", "task", "paper"};
const std::vector<std::string> kBaseKeys = {"name", "config", "sparse", "extra"};
// The optional settings of "train" that become flags, in the order they are written (after --steps).
const std::vector<std::string> kTrainFlags = {"batch_size", "lr", "warmup", "eval_every"};
const std::vector<std::string> kTrainKeys = {"steps", "batch_size", "lr", "warmup", "eval_every", "threads", "extra"};
const std::vector<std::string> kTaskKeys = {"min_contexts",   "max_contexts",  "min_keys", "max_keys", "values",
                                            "vocab",          "train_per_cell", "eval_per_cell", "data_seed"};
// The train flags that fix the model: a resumed run takes them from its checkpoint, and train refuses them then.
const std::set<std::string> kModelFlags = {"--config",   "--seed",     "--sparse-arch",    "--semantics",
                                           "--lsh-resample", "--sparse-keys", "--num-hash", "--data-max-length",
                                           "--paper-without", "--lsh-statistics",
                                           "--ks-normalization"};

// Reads values out of the parsed file; every error names the file and the key path ("train.steps").
struct Reader {
  const std::string& file;

  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    hax::fail(file, ": '", key, "' ", message);
  }
  std::string child(const std::string& key, const std::string& name) const {
    return key.empty() ? name : key + "." + name;
  }
  void known_keys(const json& object, const std::string& key, const std::vector<std::string>& known) const {
    if (!object.is_object()) fail(key.empty() ? "(top level)" : key, "must be a JSON object");
    for (const auto& item : object.items())
      if (std::find(known.begin(), known.end(), item.key()) == known.end())
        fail(child(key, item.key()), "is not a known key" + io::closest_key_hint(item.key(), known));
  }
  const json& required(const json& object, const std::string& key, const std::string& name) const {
    if (!object.contains(name)) fail(child(key, name), "is missing");
    return object.at(name);
  }
  std::int64_t integer(const json& v, const std::string& key, std::int64_t min) const {
    if (!v.is_number_integer() || v.get<std::int64_t>() < min)
      fail(key, cat("must be an integer >= ", min, ", got ", v.dump()));
    return v.get<std::int64_t>();
  }
  double number(const json& v, const std::string& key) const {
    if (!v.is_number() || v.get<double>() < 0) fail(key, "must be a number >= 0, got " + v.dump());
    return v.get<double>();
  }
  std::string text(const json& v, const std::string& key) const {
    if (!v.is_string()) fail(key, "must be a string, got " + v.dump());
    return v.get<std::string>();
  }
  // A name used in folder names: letters, digits, '_', '-', '.', not starting with '.'.
  std::string name(const json& v, const std::string& key) const {
    const std::string s = text(v, key);
    const bool ok = !s.empty() && s[0] != '.' && std::all_of(s.begin(), s.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '_' || c == '-' || c == '.';
    });
    if (!ok) fail(key, "must be a non-empty name of letters, digits, '_', '-' and '.', got " + v.dump());
    return s;
  }
  const json& array(const json& v, const std::string& key) const {
    if (!v.is_array()) fail(key, "must be a JSON array, got " + v.dump());
    return v;
  }
  template <class T>
  void unique(const std::vector<T>& values, const std::string& key) const {
    std::set<T> seen(values.begin(), values.end());
    if (seen.size() != values.size()) fail(key, "lists a value twice");
  }
};

json parse_file(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), "cannot read experiment file '", path, "'");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number too large
    fail(path, ": not valid JSON: ", e.what());
  }
}

std::string flag(const std::string& key) {
  std::string f = "--" + key;
  std::replace(f.begin(), f.end(), '_', '-');
  return f;
}

// A list of strings (train flags), each error naming `where`[i].
std::vector<std::string> read_texts(const Reader& r, const json& list, const std::string& where) {
  const json& items = r.array(list, where);
  std::vector<std::string> texts;
  for (std::size_t i = 0; i < items.size(); ++i) texts.push_back(r.text(items[i], cat(where, "[", i, "]")));
  return texts;
}

void read_bases(const Reader& r, const json& j, Experiment& e) {
  const json& bases = r.array(r.required(j, "", "bases"), "bases");
  if (bases.empty()) r.fail("bases", "must list at least one base");
  for (std::size_t i = 0; i < bases.size(); ++i) {
    const std::string key = cat("bases[", i, "]");
    r.known_keys(bases[i], key, kBaseKeys);
    ExperimentBase b;
    b.name = r.name(r.required(bases[i], key, "name"), key + ".name");
    b.config = r.text(r.required(bases[i], key, "config"), key + ".config");
    if (b.config.empty()) r.fail(key + ".config", "must name a config file");
    if (bases[i].contains("sparse")) {
      if (!bases[i]["sparse"].is_boolean()) r.fail(key + ".sparse", "must be true or false");
      b.sparse = bases[i]["sparse"].get<bool>();
    }
    if (bases[i].contains("extra")) b.extra = read_texts(r, bases[i]["extra"], key + ".extra");
    e.bases.push_back(b);
  }
  std::vector<std::string> names;
  for (const auto& b : e.bases) names.push_back(b.name);
  r.unique(names, "bases");
}

// Each listed arch must be in the grid and compute the same bits under both semantics, and the grid must run both.
void read_same_under_both_semantics(const Reader& r, const json& j, Experiment& e) {
  if (!j.contains("same_under_both_semantics")) return;
  const std::string key = "same_under_both_semantics";
  const json& archs = r.array(j[key], key);
  const auto listed = [&](const char* s) {
    return std::find(e.semantics.begin(), e.semantics.end(), s) != e.semantics.end();
  };
  if (!archs.empty() && !(listed("paper") && listed("causal")))
    r.fail(key, "needs \"semantics\" to list both \"paper\" and \"causal\"");
  for (std::size_t i = 0; i < archs.size(); ++i) {
    const std::string where = cat(key, "[", i, "]"), arch = r.text(archs[i], where);
    if (arch.empty() || std::find(e.sparse_archs.begin(), e.sparse_archs.end(), arch) == e.sparse_archs.end())
      r.fail(where, cat("must be one of the sparse archs of \"sparse_archs\", got ", archs[i].dump()));
    if (!ops::sparse::parse_sparse_arch(arch).semantics_invariant())
      r.fail(where, cat("'", arch, "' computes differently under `paper` and `causal` (LSH or key-selection ",
                        "statistics, or a query with no key), so both must be trained"));
    if (!e.same_under_both_semantics.insert(arch).second) r.fail(key, "lists a value twice");
  }
}

void read_grid(const Reader& r, const json& j, Experiment& e) {
  const json& archs = r.array(r.required(j, "", "sparse_archs"), "sparse_archs");
  for (std::size_t i = 0; i < archs.size(); ++i) {
    const std::string key = cat("sparse_archs[", i, "]"), arch = r.text(archs[i], key);
    try {
      if (!arch.empty()) ops::sparse::parse_sparse_arch(arch);
    } catch (const Error& error) {
      r.fail(key, cat("is not a sparse arch: ", error.what()));
    }
    e.sparse_archs.push_back(arch);
  }
  if (e.sparse_archs.empty()) r.fail("sparse_archs", "must list at least one arch (\"\" for the plain model)");
  r.unique(e.sparse_archs, "sparse_archs");
  const json empty = json::array();
  const json& semantics = r.array(j.contains("semantics") ? j["semantics"] : empty, "semantics");
  for (std::size_t i = 0; i < semantics.size(); ++i) {
    const std::string key = cat("semantics[", i, "]"), s = r.text(semantics[i], key);
    if (s != "paper" && s != "causal") r.fail(key, "must be \"paper\" or \"causal\", got " + semantics[i].dump());
    e.semantics.push_back(s);
  }
  r.unique(e.semantics, "semantics");
  const bool any_sparse = std::any_of(e.sparse_archs.begin(), e.sparse_archs.end(), [](auto& a) { return !a.empty(); });
  if (any_sparse && e.semantics.empty())
    r.fail("semantics", "must list \"paper\" and/or \"causal\" for the sparse archs");
  read_same_under_both_semantics(r, j, e);
  const json& seeds = r.array(r.required(j, "", "seeds"), "seeds");
  for (std::size_t i = 0; i < seeds.size(); ++i) e.seeds.push_back(r.integer(seeds[i], cat("seeds[", i, "]"), 0));
  if (e.seeds.empty()) r.fail("seeds", "must list at least one seed");
  r.unique(e.seeds, "seeds");
}

void read_train(const Reader& r, const json& j, Experiment& e) {
  const json& train = r.required(j, "", "train");
  r.known_keys(train, "train", kTrainKeys);
  e.steps = r.integer(r.required(train, "train", "steps"), "train.steps", 1);
  e.train_flags.emplace_back("--steps", std::to_string(e.steps));
  for (const std::string& key : kTrainFlags) {
    if (!train.contains(key)) continue;
    const std::string where = "train." + key;
    std::ostringstream value;
    if (key == "lr") value << r.number(train[key], where);
    else value << r.integer(train[key], where, key == "batch_size" ? 1 : 0);
    e.train_flags.emplace_back(flag(key), value.str());
  }
  if (train.contains("threads")) e.threads = static_cast<int>(r.integer(train["threads"], "train.threads", 1));
  if (train.contains("extra")) e.extra = read_texts(r, train["extra"], "train.extra");
}

void read_task(const Reader& r, const json& j, Experiment& e) {
  if (!j.contains("task")) return;
  r.known_keys(j["task"], "task", kTaskKeys);
  for (const std::string& key : kTaskKeys)  // in the order of the list, not the file's
    if (j["task"].contains(key))
      e.task_flags.emplace_back(flag(key), std::to_string(r.integer(j["task"][key], "task." + key, 0)));
}

void read_paper(const Reader& r, const json& j, Experiment& e) {
  if (!j.contains("paper")) return;
  std::vector<std::string> bases;
  for (const auto& b : e.bases) bases.push_back(b.name);
  r.known_keys(j["paper"], "paper", bases);
  for (const auto& base : j["paper"].items()) {
    const std::string key = "paper." + base.key();
    r.known_keys(base.value(), key, e.sparse_archs);
    for (const auto& arch : base.value().items())
      if (!arch.value().is_null()) e.paper[base.key()][arch.key()] = r.number(arch.value(), key + "." + arch.key());
  }
}

std::string quoted(const std::string& arg) {
  const bool plain = !arg.empty() && std::all_of(arg.begin(), arg.end(), [](unsigned char c) {
    return std::isalnum(c) || std::string_view("_-+./=:,@%").find(static_cast<char>(c)) != std::string_view::npos;
  });
  if (plain) return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// "extra" without the flags that fix the model (and their values, unless written --flag=value).
std::vector<std::string> without_model_flags(const std::vector<std::string>& extra) {
  std::vector<std::string> kept;
  for (std::size_t i = 0; i < extra.size(); ++i) {
    const std::string name = extra[i].substr(0, extra[i].find('='));
    if (!kModelFlags.contains(name)) kept.push_back(extra[i]);
    else if (name == extra[i] && i + 1 < extra.size() && !extra[i + 1].starts_with("--")) ++i;
  }
  return kept;
}

void append(std::vector<std::string>& args, const std::vector<std::pair<std::string, std::string>>& flags) {
  for (const auto& [name, value] : flags) {
    args.push_back(name);
    args.push_back(value);
  }
}

}  // namespace

Experiment load_experiment(const std::string& path) {
  const json j = parse_file(path);
  const Reader r{path};
  r.known_keys(j, "", kTopKeys);
  Experiment e;
  e.path = path;
  e.name = r.name(r.required(j, "", "name"), "name");
  read_bases(r, j, e);
  read_grid(r, j, e);
  read_train(r, j, e);
  read_task(r, j, e);
  read_paper(r, j, e);
  return e;
}

std::string RunSpec::id() const {
  std::string id = cat(base, "__", sparse_arch.empty() ? "plain" : sparse_arch, "__", semantics, "__seed", seed);
  std::replace(id.begin(), id.end(), '+', '_');
  return id;
}

std::vector<RunSpec> expand_runs(const Experiment& e) {
  std::vector<RunSpec> runs;
  for (const ExperimentBase& base : e.bases)
    for (const std::string& arch : e.sparse_archs) {
      if (!arch.empty() && !base.sparse) continue;
      const std::vector<std::string> semantics = arch.empty() ? std::vector<std::string>{"none"} : e.semantics;
      for (const std::string& s : semantics)
        for (std::int64_t seed : e.seeds) runs.push_back({base.name, base.config, arch, s, seed, base.extra});
    }
  return runs;
}

std::optional<RunSpec> measured_by(const Experiment& e, const RunSpec& run) {
  if (run.semantics != "causal" || !e.same_under_both_semantics.contains(run.sparse_arch)) return std::nullopt;
  RunSpec twin = run;
  twin.semantics = "paper";
  return twin;
}

std::vector<std::string> train_arguments(const Experiment& e, const RunSpec& run, const std::string& out_dir,
                                         bool resume) {
  std::vector<std::string> args{"train"};
  if (!resume) {
    args.insert(args.end(), {"--config", run.config});
    if (!run.sparse_arch.empty())
      args.insert(args.end(), {"--sparse-arch", run.sparse_arch, "--semantics", run.semantics});
    args.insert(args.end(), {"--seed", std::to_string(run.seed)});
  }
  args.insert(args.end(), {"--out", out_dir});
  if (resume) args.push_back("--resume");
  append(args, e.train_flags);
  args.insert(args.end(), {"--threads", std::to_string(e.threads)});
  append(args, e.task_flags);
  for (const std::vector<std::string>* flags : {&e.extra, &run.extra}) {
    const std::vector<std::string> extra = resume ? without_model_flags(*flags) : *flags;
    args.insert(args.end(), extra.begin(), extra.end());
  }
  return args;
}

std::vector<std::string> eval_arguments(const Experiment& e, const std::string& out_dir) {
  std::vector<std::string> args{"eval", "--checkpoint", out_dir + "/best", "--split", "test", "--threads",
                                std::to_string(e.threads)};
  append(args, e.task_flags);
  args.insert(args.end(), {"--json", out_dir + "/test.json", "--heatmap", out_dir + "/test.svg"});
  return args;
}

std::string command_line(const std::string& program, const std::vector<std::string>& args) {
  std::string line = quoted(program);
  for (const std::string& arg : args) {
    line += ' ';
    line += quoted(arg);
  }
  return line;
}

}  // namespace hax::training
