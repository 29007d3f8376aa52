#include "hax/inference/ruler.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <numeric>
#include <set>

#include "hax/engine/error.h"

namespace hax::inference {
namespace {

// Keys and word values are adjective-noun pairs, as RULER draws them (with wonderwords); these are common words a
// small tokenizer spells in a few pieces, and rare enough together that a model cannot guess a pair.
constexpr std::array kAdjectives = {"amber",  "brave",  "calm",   "dusty",  "eager",  "faint",  "gentle", "hollow",
                                    "icy",    "jolly",  "keen",   "lively", "mellow", "noisy",  "odd",    "proud",
                                    "quiet",  "rapid",  "silent", "tidy",   "upper",  "vivid",  "wary",   "young",
                                    "bitter", "clever", "damp",   "fancy",  "grand",  "humble", "loyal",  "modest"};
constexpr std::array kNouns = {"anchor", "bridge", "candle", "desert", "engine", "falcon", "garden", "harbor",
                               "island", "jacket", "kettle", "ladder", "meadow", "needle", "orchard", "pepper",
                               "quarry", "river",  "saddle", "tunnel", "valley", "walrus", "window", "yogurt",
                               "basket", "castle", "donkey", "forest", "glacier", "helmet", "lantern", "mirror"};

constexpr int kSnapTokens = 16;   // how far a needle may move to land after a sentence end
constexpr int kSlackTokens = 4;   // generated beyond the needles' own length
constexpr int kMultiNeedles = 4;  // needles of the multi-key, multi-value and multi-query tasks (RULER's default)
constexpr int kChainHops = 4;     // variable tracking: 4 hops, so 5 names (RULER's default)

struct TaskInfo {
  RulerTask task;
  const char* name;
};
constexpr std::array kTasks = {
    TaskInfo{RulerTask::niah_single_number, "niah_single_number"},
    TaskInfo{RulerTask::niah_single_word, "niah_single_word"},
    TaskInfo{RulerTask::niah_single_uuid, "niah_single_uuid"},
    TaskInfo{RulerTask::niah_multikey, "niah_multikey"},
    TaskInfo{RulerTask::niah_multivalue, "niah_multivalue"},
    TaskInfo{RulerTask::niah_multiquery, "niah_multiquery"},
    TaskInfo{RulerTask::variable_tracking, "variable_tracking"},
};

template <class Array>
std::string pick(const Array& words, Rng& rng) {
  return words[rng.below(words.size())];
}

std::string word_pair(Rng& rng) { return pick(kAdjectives, rng) + "-" + pick(kNouns, rng); }

std::string number_value(Rng& rng, int digits) {
  const std::uint64_t low = static_cast<std::uint64_t>(std::pow(10, digits - 1));
  return std::to_string(low + rng.below(9 * low));
}

std::string uuid_value(Rng& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const int group : {8, 4, 4, 4, 12}) {
    if (!out.empty()) out += '-';
    for (int i = 0; i < group; ++i) out += kHex[rng.below(16)];
  }
  return out;
}

std::string variable_name(Rng& rng) {
  std::string out;
  for (int i = 0; i < 5; ++i) out += static_cast<char>('A' + rng.below(26));
  return out;
}

// `count` distinct strings from `draw`.
std::vector<std::string> distinct(int count, Rng& rng, std::string (*draw)(Rng&), std::set<std::string> taken = {}) {
  std::vector<std::string> out;
  while (static_cast<int>(out.size()) < count) {
    std::string s = draw(rng);
    if (taken.insert(s).second) out.push_back(std::move(s));
  }
  return out;
}

std::string number7(Rng& rng) { return number_value(rng, 7); }
std::string number5(Rng& rng) { return number_value(rng, 5); }

// "a, b, and c" (RULER's list of queried keys).
std::string join_keys(const std::vector<std::string>& keys) {
  if (keys.size() == 1) return keys[0];
  std::string out;
  for (std::size_t i = 0; i + 1 < keys.size(); ++i) out += keys[i] + ", ";
  return out + "and " + keys.back();
}

// The task's text before token assembly: the needles (the first is placed at the requested depth), the answers,
// and the instruction, question and answer prefix around the haystack.
struct TaskText {
  std::string instruction;
  std::vector<std::string> needles;
  bool chained = false;  // needles must stay in order (variable tracking)
  std::vector<std::string> answers;
  std::string question, answer_prefix;
};

TaskText niah_text(RulerTask task, AnswerPrefix prefix, Rng& rng) {
  const bool words = task == RulerTask::niah_single_word, uuids = task == RulerTask::niah_single_uuid;
  const std::string kind = words ? "words" : uuids ? "uuids" : "numbers";
  const bool multi = task == RulerTask::niah_multikey || task == RulerTask::niah_multivalue ||
                     task == RulerTask::niah_multiquery;
  const int needles = multi ? kMultiNeedles : 1;
  // Keys: one per needle, except multi-value (one key for every needle).
  const std::vector<std::string> keys =
      distinct(task == RulerTask::niah_multivalue ? 1 : needles, rng, word_pair);
  const std::vector<std::string> values =
      words ? distinct(needles, rng, word_pair, std::set<std::string>(keys.begin(), keys.end()))
            : distinct(needles, rng, uuids ? uuid_value : number7);
  TaskText t;
  t.instruction = "Some special magic " + kind + " are hidden within the following text. Make sure to memorize it. "
                  "I will quiz you about the " + kind + " afterwards.";
  const auto lead_in = [&](const std::string& key) { return "One of the special magic " + kind + " for " + key + " is:"; };
  for (int i = 0; i < needles; ++i) t.needles.push_back(lead_in(keys[keys.size() == 1 ? 0 : i]) + " " + values[i] + ".");
  // Multi-key asks for the first key only (the others are distractors); multi-query asks for all of them.
  const std::vector<std::string> asked =
      task == RulerTask::niah_multiquery ? keys : std::vector<std::string>{keys[0]};
  t.answers = task == RulerTask::niah_multikey ? std::vector<std::string>{values[0]}
              : multi                          ? values
                                               : std::vector<std::string>{values[0]};
  t.question = "What are all the special magic " + kind + " for " + join_keys(asked) +
               " mentioned in the provided text?";
  t.answer_prefix = prefix == AnswerPrefix::needle
                        ? lead_in(keys[0])
                        : "The special magic " + kind + " for " + join_keys(asked) + " mentioned in the provided text are";
  return t;
}

TaskText variable_tracking_text(Rng& rng) {
  const std::vector<std::string> names = distinct(kChainHops + 1, rng, variable_name);
  const std::string value = number5(rng);
  TaskText t;
  t.instruction = "Memorize and track the chain(s) of variable assignment hidden in the following text.";
  t.chained = true;
  t.needles.push_back("VAR " + names[0] + " = " + value + ".");
  for (int i = 1; i <= kChainHops; ++i) t.needles.push_back("VAR " + names[i] + " = " + names[i - 1] + ".");
  t.answers = names;
  t.question = "Question: Find all variables that are assigned the value " + value + " in the text above.";
  t.answer_prefix = "Answer: According to the chain(s) of variables assignment in the text above, " +
                    std::to_string(names.size()) + " variables are assigned the value " + value + ", they are:";
  return t;
}

TaskText task_text(RulerTask task, AnswerPrefix prefix, Rng& rng) {
  return task == RulerTask::variable_tracking ? variable_tracking_text(rng) : niah_text(task, prefix, rng);
}

void append(std::vector<std::int32_t>& out, const std::vector<std::int32_t>& ids) {
  out.insert(out.end(), ids.begin(), ids.end());
}

// A value of the kind `task` hides (a number, a word pair or a UUID-like string).
std::string task_value(RulerTask task, Rng& rng) {
  return task == RulerTask::niah_single_word ? word_pair(rng) : task == RulerTask::niah_single_uuid ? uuid_value(rng)
                                                                                                     : number7(rng);
}

// The tokens of `sentence` after those of `lead` when the sentence's encoding starts with the lead's (empty if not:
// the tokenizer merged across the boundary, and the continuation of the prompt's lead-in is not those tokens).
std::vector<std::int32_t> after_lead(const std::vector<std::int32_t>& lead, const std::vector<std::int32_t>& sentence) {
  if (sentence.size() <= lead.size() || !std::equal(lead.begin(), lead.end(), sentence.begin())) return {};
  return {sentence.begin() + static_cast<std::ptrdiff_t>(lead.size()), sentence.end()};
}

// RulerPrompt::answer_tokens and foil_tokens: the queried needle's value after its lead-in (t.answer_prefix), and a
// foil of the same kind that is none of the prompt's values, after the same lead-in.
void set_forced_choice(RulerPrompt& p, RulerTask task, const TaskText& t, const TextCodec& codec,
                       const std::vector<std::int32_t>& queried_needle, Rng& rng) {
  const std::vector<std::int32_t> lead = codec.encode(t.answer_prefix);
  std::string foil = task_value(task, rng);
  while (std::any_of(t.needles.begin(), t.needles.end(),
                     [&](const std::string& n) { return n.find(foil) != std::string::npos; }))
    foil = task_value(task, rng);
  p.answer_tokens = after_lead(lead, queried_needle);
  p.foil_tokens = after_lead(lead, codec.encode(t.answer_prefix + " " + foil + "."));
  if (p.answer_tokens.empty() || p.foil_tokens.empty()) p.answer_tokens.clear(), p.foil_tokens.clear();
}

// Whether a needle placed before haystack token `at` starts a sentence: the token before it ends one.
bool after_sentence_end(const TextCodec& codec, std::span<const std::int32_t> hay, std::size_t at) {
  if (at == 0 || at == hay.size()) return true;
  const std::string text = codec.decode(hay.subspan(at - 1, 1));
  return !text.empty() && std::string_view(".!?\n").find(text.back()) != std::string_view::npos;
}

// The haystack offset for a needle at `depth_percent`: the nearest sentence end within kSnapTokens, else exact.
std::size_t needle_offset(const TextCodec& codec, std::span<const std::int32_t> hay, double depth_percent) {
  const auto exact = static_cast<std::ptrdiff_t>(std::llround(depth_percent / 100.0 * static_cast<double>(hay.size())));
  for (std::ptrdiff_t d = 0; d <= kSnapTokens; ++d)
    for (const std::ptrdiff_t at : {exact - d, exact + d})
      if (at >= 0 && at <= static_cast<std::ptrdiff_t>(hay.size()) &&
          after_sentence_end(codec, hay, static_cast<std::size_t>(at)))
        return static_cast<std::size_t>(at);
  return static_cast<std::size_t>(exact);
}

// Depths of the needles: the first at `depth`; the others uniform over the haystack, or, for a chain, sorted over
// [depth, 100] so that each assignment follows the one it refers to.
std::vector<double> needle_depths(const TaskText& t, double depth, Rng& rng) {
  std::vector<double> depths{depth};
  for (std::size_t i = 1; i < t.needles.size(); ++i)
    depths.push_back(t.chained ? depth + (100.0 - depth) * rng.uniform_double() : 100.0 * rng.uniform_double());
  if (t.chained) std::sort(depths.begin() + 1, depths.end());
  return depths;
}

}  // namespace

const std::vector<RulerTask>& all_ruler_tasks() {
  static const std::vector<RulerTask> tasks = [] {
    std::vector<RulerTask> out;
    for (const TaskInfo& t : kTasks) out.push_back(t.task);
    return out;
  }();
  return tasks;
}

std::string ruler_task_name(RulerTask task) {
  for (const TaskInfo& t : kTasks)
    if (t.task == task) return t.name;
  fail("unknown RULER task ", static_cast<int>(task));
}

std::vector<RulerTask> parse_ruler_tasks(const std::string& list) {
  if (list == "all") return all_ruler_tasks();
  std::vector<RulerTask> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t end = std::min(list.find(',', start), list.size());
    const std::string name = list.substr(start, end - start);
    const auto* found = std::find_if(kTasks.begin(), kTasks.end(), [&](const TaskInfo& t) { return name == t.name; });
    if (found == kTasks.end()) {
      std::string known = "all";
      for (const TaskInfo& t : kTasks) known += cat(", ", t.name);
      fail("unknown task '", name, "' in --tasks (known: ", known, ")");
    }
    if (std::find(out.begin(), out.end(), found->task) == out.end()) out.push_back(found->task);
    start = end + 1;
  }
  return out;
}

AnswerPrefix parse_answer_prefix(const std::string& name) {
  if (name == "needle") return AnswerPrefix::needle;
  if (name == "ruler") return AnswerPrefix::ruler;
  fail("unknown answer prefix '", name, "' (known: needle, ruler)");
}

std::string answer_prefix_name(AnswerPrefix prefix) { return prefix == AnswerPrefix::needle ? "needle" : "ruler"; }

RulerPrompt make_ruler_prompt(RulerTask task, const TextCodec& codec, std::span<const std::int32_t> haystack,
                              int length, double depth_percent, AnswerPrefix prefix, Rng& rng) {
  check(!haystack.empty(), "the haystack is empty: no held-out tokens to build RULER prompts from");
  const TaskText t = task_text(task, prefix, rng);
  const std::vector<std::int32_t> instruction = codec.encode(t.instruction);
  std::vector<std::int32_t> question = codec.encode(t.question);
  append(question, codec.encode(t.answer_prefix));
  std::vector<std::vector<std::int32_t>> needles;
  std::size_t fixed = instruction.size() + question.size();
  for (const std::string& n : t.needles) {
    needles.push_back(codec.encode(n));
    fixed += needles.back().size();
  }
  check(static_cast<std::size_t>(length) >= fixed, "a ", ruler_task_name(task), " prompt of ", length,
        " tokens cannot hold its ", fixed, " tokens of instruction, needles and question: use a longer --context");

  // The haystack: length - fixed held-out tokens, read cyclically from a random offset.
  std::vector<std::int32_t> hay(static_cast<std::size_t>(length) - fixed);
  const std::size_t start = rng.below(haystack.size());
  for (std::size_t i = 0; i < hay.size(); ++i) hay[i] = haystack[(start + i) % haystack.size()];

  const std::vector<double> depths = needle_depths(t, depth_percent, rng);
  std::vector<std::size_t> offsets;
  for (const double d : depths) offsets.push_back(needle_offset(codec, hay, d));
  if (t.chained)  // a snapped assignment must not move before the one it refers to
    for (std::size_t i = 1; i < offsets.size(); ++i) offsets[i] = std::max(offsets[i], offsets[i - 1]);
  std::vector<std::size_t> order(t.needles.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return offsets[a] < offsets[b]; });

  RulerPrompt p;
  p.tokens = instruction;
  p.context_begin = p.tokens.size();
  std::size_t copied = 0;
  for (const std::size_t n : order) {
    p.tokens.insert(p.tokens.end(), hay.begin() + static_cast<std::ptrdiff_t>(copied),
                    hay.begin() + static_cast<std::ptrdiff_t>(offsets[n]));
    copied = offsets[n];
    p.needle_positions.push_back(p.tokens.size());
    p.needles.push_back(t.needles[n]);
    append(p.tokens, needles[n]);
  }
  p.tokens.insert(p.tokens.end(), hay.begin() + static_cast<std::ptrdiff_t>(copied), hay.end());
  p.context_end = p.tokens.size();
  append(p.tokens, question);
  p.answers = t.answers;
  // Enough to restate every needle (a model answering a list tends to repeat the sentences), and some slack.
  p.max_new = static_cast<int>(fixed - instruction.size() - question.size()) + kSlackTokens;
  // Drawn last, so that the prompt is the same with or without it.
  if (prefix == AnswerPrefix::needle && !t.chained) set_forced_choice(p, task, t, codec, needles[0], rng);
  return p;
}

AnswerMatch match_answers(std::string_view generated, const std::vector<std::string>& expected) {
  const auto lower = [](std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const std::string text = lower(generated);
  AnswerMatch m;
  m.expected = static_cast<int>(expected.size());
  for (const std::string& e : expected) m.found += text.find(lower(e)) != std::string::npos;
  return m;
}

void validate(const RulerGrid& g) {
  check(!g.tasks.empty(), "no RULER tasks to run");
  check(!g.lengths.empty(), "no context lengths to evaluate");
  check(!g.depths.empty(), "no needle depths to evaluate");
  for (const int l : g.lengths) check(l >= 1, "a context length must be >= 1 token, got ", l);
  for (const double d : g.depths) check(d >= 0 && d <= 100, "a needle depth must be in [0, 100] percent, got ", d);
  check(g.samples >= 1, "--samples must be >= 1, got ", g.samples);
}

RulerPrompt ruler_sample_prompt(const RulerGrid& grid, RulerTask task, int length, double depth, int sample,
                                const TextCodec& codec, std::span<const std::int32_t> haystack) {
  Rng rng = Rng(grid.seed)
                .fork(static_cast<std::uint64_t>(task))
                .fork(static_cast<std::uint64_t>(length))
                .fork(static_cast<std::uint64_t>(std::llround(depth * 100)))
                .fork(static_cast<std::uint64_t>(sample));
  return make_ruler_prompt(task, codec, haystack, length, depth, grid.prefix, rng);
}

std::vector<RulerCell> run_ruler(const RulerGrid& grid, const TextCodec& codec, std::span<const std::int32_t> haystack,
                                 const PromptRunner& runner,
                                 const std::function<void(const RulerSample&)>& on_sample) {
  validate(grid);
  std::vector<RulerCell> cells;
  for (const RulerTask task : grid.tasks)
    for (const int length : grid.lengths)
      for (const double depth : grid.depths) {
        RulerCell cell{task, length, depth};
        for (int s = 0; s < grid.samples; ++s) {
          const RulerPrompt p = ruler_sample_prompt(grid, task, length, depth, s, codec, haystack);
          const bool has_choice = !p.answer_tokens.empty();
          const PromptOutcome out =
              runner(p.tokens, p.max_new,
                     has_choice ? std::vector<std::vector<std::int32_t>>{p.answer_tokens, p.foil_tokens}
                                : std::vector<std::vector<std::int32_t>>{});
          const std::string generated = codec.decode(out.generated);
          RulerSample r{task, length, depth, s, p.answers, generated, match_answers(generated, p.answers), {}};
          ++cell.samples;
          cell.score_sum += r.match.score();
          cell.all_found += r.match.all();
          if (has_choice && out.log_likelihoods.size() == 2) {
            r.choice = AnswerChoice{out.log_likelihoods[0], out.log_likelihoods[1],
                                    static_cast<int>(p.answer_tokens.size())};
            ++cell.choices;
            cell.recalled += r.choice->recalled();
            cell.answer_nll_sum += -r.choice->answer_log_likelihood / r.choice->answer_tokens;
            cell.margin_sum += r.choice->answer_log_likelihood - r.choice->foil_log_likelihood;
          }
          if (on_sample) on_sample(r);
        }
        cells.push_back(cell);
      }
  return cells;
}

std::vector<RulerCell> run_ruler(const RulerGrid& grid, const TextCodec& codec, std::span<const std::int32_t> haystack,
                                 const Continuation& continuation,
                                 const std::function<void(const RulerSample&)>& on_sample) {
  const PromptRunner generate_only = [&](std::span<const std::int32_t> prompt, int max_new,
                                         const std::vector<std::vector<std::int32_t>>&) {
    return PromptOutcome{continuation(prompt, max_new), {}};
  };
  return run_ruler(grid, codec, haystack, generate_only, on_sample);
}

}  // namespace hax::inference
