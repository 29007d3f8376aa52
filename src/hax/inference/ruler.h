// RULER-style long-context tasks (Hsieh et al. 2024, "RULER: What's the Real Context Size of Your Long-Context
// Language Models?") on real text: needles ("One of the special magic numbers for calm-river is: 4725031.") hidden
// at a relative depth in a haystack of held-out documents, a question at the end, and the model's greedy
// continuation scored by RULER's string match. The prompt is built in token space: the haystack is the corpus's own
// token ids (never re-tokenized), the needles and the question are encoded text, so every prompt is exactly the
// requested number of tokens and a needle's position is known to the token.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hax/engine/rng.h"

namespace hax::inference {

// Text <-> token ids: what the tasks need of a tokenizer (data::Tokenizer in the CLI, a fake one in tests).
class TextCodec {
 public:
  virtual ~TextCodec() = default;
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(std::span<const std::int32_t> ids) const = 0;
};

// The tasks, in the order of the report's columns (RULER's niah_single_{1,2,3}, niah_multikey_1, niah_multivalue,
// niah_multiquery and vt, with the corpus's text as every haystack).
enum class RulerTask {
  niah_single_number,  // one needle, a 7-digit number
  niah_single_word,    // one needle, an adjective-noun word pair
  niah_single_uuid,    // one needle, a UUID-like 8-4-4-4-12 hex string
  niah_multikey,       // the queried needle and 3 distractors with other keys
  niah_multivalue,     // 4 needles with the same key: all 4 values must be recalled
  niah_multiquery,     // 4 needles with different keys, all 4 asked
  variable_tracking,   // VAR ABCDE = 12345, VAR FGHIJ = ABCDE, ... (4 hops): all 5 names must be recalled
};

const std::vector<RulerTask>& all_ruler_tasks();
std::string ruler_task_name(RulerTask task);
// "all" or a comma-separated list of task names (duplicates dropped, order kept); hax::Error naming an unknown one.
std::vector<RulerTask> parse_ruler_tasks(const std::string& list);

// How the prompt ends, right before the model's continuation.
//   needle: the lead-in of the needle holding the first answer ("One of the special magic numbers for calm-river
//           is:"), so a base model can answer by recalling what followed those words in the context (the default:
//           small models trained on plain text do not follow instructions);
//   ruler:  RULER's own answer prefix ("The special magic numbers for calm-river mentioned in the provided text
//           are"). Variable tracking uses RULER's in both styles.
enum class AnswerPrefix { needle, ruler };
AnswerPrefix parse_answer_prefix(const std::string& name);  // hax::Error for anything else
std::string answer_prefix_name(AnswerPrefix prefix);

struct RulerPrompt {
  std::vector<std::int32_t> tokens;           // exactly the requested length
  std::vector<std::string> answers;           // every value the continuation must contain
  std::vector<std::string> needles;           // the inserted sentences, in the order they appear
  std::vector<std::size_t> needle_positions;  // the token offset of each in `tokens`
  std::size_t context_begin = 0, context_end = 0;  // the haystack-with-needles part of `tokens`
  int max_new = 0;                            // tokens to generate: the answers' length and some slack
  // The forced choice, where the prompt ends with the queried needle's lead-in (`needle` answer prefix, every task
  // but variable tracking; empty otherwise): the tokens that follow the lead-in in the needle (its value and the
  // period), and the same for a foil, a value of the same kind found in none of the needles.
  std::vector<std::int32_t> answer_tokens, foil_tokens;
};

// A prompt of `length` tokens for `task`: an instruction, `haystack` (held-out token ids, read cyclically from a
// random offset) with the needles inserted, and the question. The first needle (the queried one; variable
// tracking's first assignment) goes at `depth_percent` of the haystack, moved to the nearest sentence end within a
// few tokens; the others at random depths (the chain's later assignments after the first, in order). Everything
// random comes from `rng`. hax::Error when `length` cannot hold the instruction, needles and question, or the
// haystack is empty.
RulerPrompt make_ruler_prompt(RulerTask task, const TextCodec& codec, std::span<const std::int32_t> haystack,
                              int length, double depth_percent, AnswerPrefix prefix, Rng& rng);

// RULER's string_match_all: each expected value counts when the text contains it, ignoring case.
struct AnswerMatch {
  int found = 0, expected = 0;
  double score() const { return expected ? static_cast<double>(found) / expected : 0.0; }
  bool all() const { return found == expected; }
};
AnswerMatch match_answers(std::string_view generated, const std::vector<std::string>& expected);

// The grid: every task x length x depth, `samples` prompts each.
struct RulerGrid {
  std::vector<RulerTask> tasks;
  std::vector<int> lengths;      // tokens
  std::vector<double> depths;    // percent, 0 to 100
  int samples = 4;
  std::uint64_t seed = 1;
  AnswerPrefix prefix = AnswerPrefix::needle;
};

// hax::Error for an empty axis, a length < 1, a depth outside [0, 100] or samples < 1.
void validate(const RulerGrid& grid);

// Greedy continuation of a prompt (the model in the CLI; an oracle or a fake in tests).
using Continuation = std::function<std::vector<std::int32_t>(std::span<const std::int32_t> prompt, int max_new)>;

// What a model does with one prompt: its greedy continuation of max_new tokens, and the log-likelihood (natural
// log, teacher-forced) of each candidate continuation given the prompt, in the candidates' order.
struct PromptOutcome {
  std::vector<std::int32_t> generated;
  std::vector<double> log_likelihoods;
};
using PromptRunner = std::function<PromptOutcome(std::span<const std::int32_t> prompt, int max_new,
                                                 const std::vector<std::vector<std::int32_t>>& candidates)>;

// The forced choice between the needle's value and the foil (RulerPrompt::answer_tokens, foil_tokens): it counts as
// recalled when the value is the more likely continuation. Unlike exact match it tells apart models that all fail
// to reproduce a value token for token (small ones), and chance is 50%.
struct AnswerChoice {
  double answer_log_likelihood = 0, foil_log_likelihood = 0;
  int answer_tokens = 0;
  bool recalled() const { return answer_log_likelihood > foil_log_likelihood; }
};

struct RulerSample {
  RulerTask task;
  int length = 0;
  double depth = 0;
  int sample = 0;
  std::vector<std::string> answers;
  std::string generated;
  AnswerMatch match;
  std::optional<AnswerChoice> choice;  // where the prompt has one and the runner scored it
};

struct RulerCell {
  RulerTask task;
  int length = 0;
  double depth = 0;
  int samples = 0;
  double score_sum = 0;  // of AnswerMatch::score()
  int all_found = 0;     // samples whose every answer was found
  int choices = 0, recalled = 0;  // samples with a forced choice, and those whose value won it
  double answer_nll_sum = 0;      // over those samples: the value's negative log-likelihood per token (nats)
  double margin_sum = 0;          // and the value's log-likelihood minus the foil's (nats; > 0: the value is likelier)
  double accuracy() const { return samples ? 100.0 * score_sum / samples : 0.0; }
  double choice_accuracy() const { return choices ? 100.0 * recalled / choices : 0.0; }
};

// Cells in task, length, depth order. Sample s of a cell is drawn from Rng(seed) forked by the task, the length,
// the depth and s, so it does not depend on which other tasks, lengths or depths run.
// With a PromptRunner, each prompt's forced choice is scored too; with a Continuation alone, none is.
std::vector<RulerCell> run_ruler(const RulerGrid& grid, const TextCodec& codec, std::span<const std::int32_t> haystack,
                                 const PromptRunner& runner,
                                 const std::function<void(const RulerSample&)>& on_sample = {});
std::vector<RulerCell> run_ruler(const RulerGrid& grid, const TextCodec& codec, std::span<const std::int32_t> haystack,
                                 const Continuation& continuation,
                                 const std::function<void(const RulerSample&)>& on_sample = {});

// The prompt run_ruler builds for one sample (its seeding in one place).
RulerPrompt ruler_sample_prompt(const RulerGrid& grid, RulerTask task, int length, double depth, int sample,
                                const TextCodec& codec, std::span<const std::int32_t> haystack);

}  // namespace hax::inference
