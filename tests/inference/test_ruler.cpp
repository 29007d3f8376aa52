// RULER-style tasks (inference/ruler.h) with a byte-level codec: prompts are exactly the requested length with the
// queried needle at the requested depth, their answers can be read back from the prompt's text alone (an oracle
// that does so scores 100, a model that says nothing or names a distractor scores 0), the seed fixes them, and the
// variable-tracking chain leads from the value to exactly the expected names.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <set>

#include "../support/expect_error.h"
#include "hax/inference/ruler.h"

namespace hax::testing {
namespace {

using inference::RulerTask;

// One token per byte (ids 4..259), so positions in tokens are positions in text.
class ByteCodec : public inference::TextCodec {
 public:
  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> ids;
    for (const unsigned char c : text) ids.push_back(c + 4);
    return ids;
  }
  std::string decode(std::span<const std::int32_t> ids) const override {
    std::string text;
    for (const std::int32_t id : ids) text += static_cast<char>(id - 4);
    return text;
  }
};

const ByteCodec kCodec;

// Sentences of 12 to 28 bytes, so a needle always finds a sentence end within the snapping distance (16).
std::vector<std::int32_t> haystack() {
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "Line " + std::to_string(i) + " says " + std::string(static_cast<std::size_t>(i % 12), 'x') + ". ";
  return kCodec.encode(text);
}

std::string text_of(const inference::RulerPrompt& p) { return kCodec.decode(p.tokens); }

std::vector<std::string> all_matches(const std::string& text, const std::regex& pattern, int group = 1) {
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), pattern); it != std::sregex_iterator(); ++it)
    out.push_back((*it)[group]);
  return out;
}

// What a model that read the prompt perfectly would answer, from the prompt's text alone: the values of the keys
// the question asks about; for variable tracking, every name the chain from the asked value reaches.
std::string oracle_answer(const std::string& text) {
  std::smatch m;
  if (std::regex_search(text, m, std::regex("assigned the value (\\d+) in the text above"))) {
    std::set<std::string> reached{m[1]};
    const std::regex assignment("VAR ([A-Z]+) = ([A-Z0-9]+)\\.");
    std::string answer;
    for (bool grew = true; grew;) {
      grew = false;
      for (auto it = std::sregex_iterator(text.begin(), text.end(), assignment);
           it != std::sregex_iterator(); ++it)
        if (reached.count((*it)[2]) && reached.insert((*it)[1]).second) {
          answer += std::string((*it)[1]) + " ";
          grew = true;
        }
    }
    return answer;
  }
  EXPECT_TRUE(std::regex_search(text, m, std::regex("What are all the special magic \\w+ for (.*) mentioned")));
  std::string answer;
  const std::string asked = m[1];
  for (const std::string& key : all_matches(asked, std::regex("([a-z]+-[a-z]+)")))
    for (const std::string& value :
         all_matches(text, std::regex("One of the special magic \\w+ for " + key + " is: ([0-9a-z-]+)\\.")))
      answer += value + " ";
  return answer;
}

// The index in p.needles of the queried needle (the one placed at the requested depth).
std::size_t queried_needle(const inference::RulerPrompt& p, RulerTask task) {
  for (std::size_t i = 0; i < p.needles.size(); ++i) {
    const std::string& n = p.needles[i];
    if (task == RulerTask::variable_tracking ? n.starts_with("VAR " + p.answers[0] + " = ")
                                             : n.ends_with(" " + p.answers[0] + "."))
      return i;
  }
  ADD_FAILURE() << "no needle holds " << p.answers[0];
  return 0;
}

inference::RulerPrompt prompt(RulerTask task, int length, double depth, std::uint64_t seed = 1) {
  Rng rng(seed);
  return inference::make_ruler_prompt(task, kCodec, haystack(), length, depth, inference::AnswerPrefix::needle, rng);
}

TEST(Ruler, TaskNamesParseAndAnUnknownOneIsNamed) {
  EXPECT_EQ(inference::parse_ruler_tasks("all"), inference::all_ruler_tasks());
  EXPECT_EQ(inference::all_ruler_tasks().size(), 7u);
  EXPECT_EQ(inference::parse_ruler_tasks("variable_tracking,niah_multikey,variable_tracking"),
            (std::vector{RulerTask::variable_tracking, RulerTask::niah_multikey}));
  for (const RulerTask t : inference::all_ruler_tasks())
    EXPECT_EQ(inference::parse_ruler_tasks(inference::ruler_task_name(t)), std::vector{t});
  expect_error_naming([] { inference::parse_ruler_tasks("niah_single_number,niah_sngle"); },
                      {"unknown task 'niah_sngle'", "niah_multiquery"});
  expect_error_naming([] { inference::parse_answer_prefix("copy"); }, {"copy", "needle, ruler"});
}

TEST(Ruler, PromptsHaveTheLengthAndTheQueriedNeedleSitsAtItsDepthAfterASentenceEnd) {
  for (const RulerTask task : inference::all_ruler_tasks())
    for (const int length : {700, 3000})
      for (const double depth : {0.0, 25.0, 50.0, 90.0, 100.0}) {
        SCOPED_TRACE(inference::ruler_task_name(task) + " at " + std::to_string(length) + ", " + std::to_string(depth));
        const inference::RulerPrompt p = prompt(task, length, depth);
        ASSERT_EQ(p.tokens.size(), static_cast<std::size_t>(length));
        const std::string text = text_of(p);
        ASSERT_EQ(p.needles.size(), p.needle_positions.size());
        std::size_t needle_tokens = 0;
        for (std::size_t i = 0; i < p.needles.size(); ++i) {
          EXPECT_EQ(text.substr(p.needle_positions[i], p.needles[i].size()), p.needles[i]);
          needle_tokens += p.needles[i].size();
        }
        // The queried needle's offset in the haystack alone (without the needles before it).
        const std::size_t q = queried_needle(p, task);
        std::size_t before = 0;
        for (std::size_t i = 0; i < q; ++i) before += p.needles[i].size();
        const double hay = static_cast<double>(p.context_end - p.context_begin - needle_tokens);
        const double offset = static_cast<double>(p.needle_positions[q] - p.context_begin - before);
        EXPECT_LE(std::abs(offset - depth / 100 * hay), 16.0);
        const bool at_edge = offset == 0 || offset == hay;
        if (!at_edge) {
          EXPECT_EQ(text[p.needle_positions[q] - 1], '.') << text.substr(p.needle_positions[q] - 20, 40);
        }
      }
}

TEST(Ruler, AnswersCanBeReadFromThePromptTextAlone) {
  for (const RulerTask task : inference::all_ruler_tasks())
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
      const inference::RulerPrompt p = prompt(task, 1500, 40, seed);
      const inference::AnswerMatch m = inference::match_answers(oracle_answer(text_of(p)), p.answers);
      EXPECT_TRUE(m.all()) << inference::ruler_task_name(task) << " seed " << seed << ": " << oracle_answer(text_of(p));
      const std::size_t expected = task == RulerTask::niah_multivalue || task == RulerTask::niah_multiquery ? 4
                                   : task == RulerTask::variable_tracking                                 ? 5
                                                                                                          : 1;
      EXPECT_EQ(p.answers.size(), expected);
      EXPECT_GE(p.max_new, static_cast<int>(kCodec.encode(p.answers[0]).size()));
      // The answers never appear in the question (it would leak them) or in the haystack by chance.
      const std::string question = text_of(p).substr(p.context_end);
      for (const std::string& a : p.answers) EXPECT_EQ(question.find(a), std::string::npos) << a;
    }
}

TEST(Ruler, MultiKeyHasDistractorsWithOtherKeysAndMultiValueOneKey) {
  const inference::RulerPrompt mk = prompt(RulerTask::niah_multikey, 2000, 50);
  std::set<std::string> keys;
  for (const std::string& n : mk.needles) keys.insert(n.substr(0, n.find(" is:")));
  EXPECT_EQ(keys.size(), 4u);
  const std::string distractor = mk.needles[queried_needle(mk, RulerTask::niah_multikey) == 0 ? 1 : 0];
  EXPECT_FALSE(inference::match_answers(distractor, mk.answers).all());
  const inference::RulerPrompt mv = prompt(RulerTask::niah_multivalue, 2000, 50);
  keys.clear();
  for (const std::string& n : mv.needles) keys.insert(n.substr(0, n.find(" is:")));
  EXPECT_EQ(keys.size(), 1u);
}

TEST(Ruler, TheSameSeedGivesTheSamePromptAndAnotherSeedAnother) {
  for (const RulerTask task : inference::all_ruler_tasks()) {
    EXPECT_EQ(prompt(task, 1200, 30, 7).tokens, prompt(task, 1200, 30, 7).tokens);
    EXPECT_NE(prompt(task, 1200, 30, 7).tokens, prompt(task, 1200, 30, 8).tokens);
  }
  // A sample in run_ruler depends on its own coordinates only, not on what else runs.
  inference::RulerGrid a{{RulerTask::niah_multiquery}, {900}, {60}, 2, 3};
  inference::RulerGrid b{inference::all_ruler_tasks(), {500, 900}, {0, 60}, 2, 3};
  EXPECT_EQ(inference::ruler_sample_prompt(a, RulerTask::niah_multiquery, 900, 60, 1, kCodec, haystack()).tokens,
            inference::ruler_sample_prompt(b, RulerTask::niah_multiquery, 900, 60, 1, kCodec, haystack()).tokens);
}

TEST(Ruler, VariableTrackingIsOneChainInOrderFromTheValue) {
  for (const double depth : {0.0, 50.0, 100.0}) {
    const inference::RulerPrompt p = prompt(RulerTask::variable_tracking, 1500, depth, 11);
    ASSERT_EQ(p.needles.size(), 5u);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(p.needles[0], m, std::regex("VAR ([A-Z]{5}) = (\\d{5})\\.")));
    EXPECT_EQ(m[1], p.answers[0]);
    for (std::size_t i = 1; i < p.needles.size(); ++i) {
      EXPECT_EQ(p.needles[i], "VAR " + p.answers[i] + " = " + p.answers[i - 1] + ".");
      EXPECT_GE(p.needle_positions[i], p.needle_positions[i - 1]);
    }
    EXPECT_EQ(std::set<std::string>(p.answers.begin(), p.answers.end()).size(), 5u);
    EXPECT_NE(text_of(p).find("assigned the value " + std::string(m[2]) + ","), std::string::npos);
  }
}

TEST(Ruler, MatchingIsRulersStringMatchAll) {
  EXPECT_TRUE(inference::match_answers(" 4725031. And more", {"4725031"}).all());
  EXPECT_EQ(inference::match_answers("it is CALM-river", {"calm-River"}).found, 1);
  const inference::AnswerMatch half = inference::match_answers("12 and 34", {"12", "56", "34", "78"});
  EXPECT_EQ(half.found, 2);
  EXPECT_DOUBLE_EQ(half.score(), 0.5);
  EXPECT_FALSE(half.all());
  EXPECT_EQ(inference::match_answers("472503", {"4725031"}).found, 0);  // a prefix of the value is not the value
  EXPECT_EQ(inference::match_answers("", {"1"}).score(), 0.0);
}

TEST(Ruler, AnOracleScores100ANoisyModel0AndCellsCoverTheGrid) {
  const inference::RulerGrid grid{inference::all_ruler_tasks(), {600, 1200}, {0, 50, 100}, 2, 5};
  const std::vector<std::int32_t> hay = haystack();
  int calls = 0;
  const auto oracle = [&](std::span<const std::int32_t> prompt, int max_new) {
    ++calls;
    std::vector<std::int32_t> answer = kCodec.encode(oracle_answer(kCodec.decode(prompt)));
    EXPECT_LE(answer.size(), static_cast<std::size_t>(max_new));  // max_new leaves room for the whole answer
    return answer;
  };
  const std::vector<inference::RulerCell> cells = inference::run_ruler(grid, kCodec, hay, oracle);
  EXPECT_EQ(calls, 7 * 2 * 3 * 2);
  ASSERT_EQ(cells.size(), 7u * 2 * 3);
  EXPECT_EQ(cells[4].task, RulerTask::niah_single_number);
  EXPECT_EQ(cells[4].length, 1200);
  EXPECT_EQ(cells[4].depth, 50);
  for (const inference::RulerCell& c : cells) {
    EXPECT_EQ(c.samples, 2);
    EXPECT_DOUBLE_EQ(c.accuracy(), 100.0) << inference::ruler_task_name(c.task);
    EXPECT_EQ(c.all_found, 2);
  }
  // An empty continuation finds nothing; one value of four scores 25.
  const auto silent = [](std::span<const std::int32_t>, int) { return std::vector<std::int32_t>{}; };
  for (const inference::RulerCell& c : inference::run_ruler(grid, kCodec, hay, silent))
    EXPECT_EQ(c.accuracy(), 0.0);
  std::vector<inference::RulerSample> seen;
  const inference::RulerGrid one{{RulerTask::niah_multivalue}, {800}, {50}, 3, 2};
  const auto first_value_only = [](std::span<const std::int32_t> prompt, int) {
    const std::string answer = oracle_answer(kCodec.decode(prompt));
    return kCodec.encode(answer.substr(0, answer.find(' ')));
  };
  const auto partial = inference::run_ruler(one, kCodec, hay, first_value_only,
                                            [&](const inference::RulerSample& s) { seen.push_back(s); });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[2].sample, 2);
  EXPECT_EQ(seen[0].match.found, 1);
  EXPECT_DOUBLE_EQ(partial[0].accuracy(), 25.0);
  EXPECT_EQ(partial[0].all_found, 0);
}

// The forced choice: after the prompt's lead-in, the answer tokens are the queried needle's value and period as the
// needle has them, the foil is a value of the same kind that no needle holds; the prompt itself does not change
// with it (it is drawn last); variable tracking and the `ruler` prefix have none.
TEST(Ruler, ForcedChoiceIsTheQueriedValueAgainstAFoilOfItsKind) {
  for (const RulerTask task : inference::all_ruler_tasks()) {
    SCOPED_TRACE(inference::ruler_task_name(task));
    const inference::RulerPrompt p = prompt(task, 900, 50);
    if (task == RulerTask::variable_tracking) {
      EXPECT_TRUE(p.answer_tokens.empty() && p.foil_tokens.empty());
      continue;
    }
    const std::string answer = kCodec.decode(p.answer_tokens), foil = kCodec.decode(p.foil_tokens);
    EXPECT_EQ(answer, " " + p.answers[0] + ".");
    ASSERT_GT(foil.size(), 2u);
    EXPECT_EQ(foil.front(), ' ');
    EXPECT_EQ(foil.back(), '.');
    const std::string foil_value = foil.substr(1, foil.size() - 2);
    if (task == RulerTask::niah_single_number || task == RulerTask::niah_multikey)
      EXPECT_TRUE(std::regex_match(foil_value, std::regex("\\d{7}"))) << foil_value;
    for (const std::string& needle : p.needles) EXPECT_EQ(needle.find(foil_value), std::string::npos) << needle;
    EXPECT_EQ(text_of(p).find(foil_value), std::string::npos);
    // The prompt ends with the lead-in that the value follows in the queried needle.
    const auto queried = std::find_if(p.needles.begin(), p.needles.end(), [&](const std::string& n) {
      return n.find(answer) != std::string::npos;
    });
    ASSERT_NE(queried, p.needles.end());
    EXPECT_TRUE(text_of(p).ends_with(queried->substr(0, queried->find(answer)))) << *queried;
  }
  Rng rng(1);
  EXPECT_TRUE(inference::make_ruler_prompt(RulerTask::niah_single_number, kCodec, haystack(), 900, 50,
                                           inference::AnswerPrefix::ruler, rng)
                  .answer_tokens.empty());
}

// A runner that gives the value the higher likelihood recalls every choice; the reverse none; a Continuation alone
// scores no choice.
TEST(Ruler, RunnerLikelihoodsDecideTheChoiceAndTheAnswerNll) {
  const inference::RulerGrid grid{{RulerTask::niah_single_word, RulerTask::variable_tracking}, {700}, {0, 100}, 2, 3};
  const std::vector<std::int32_t> hay = haystack();
  for (const bool value_wins : {true, false}) {
    const inference::PromptRunner runner = [&](std::span<const std::int32_t>, int,
                                               const std::vector<std::vector<std::int32_t>>& candidates) {
      inference::PromptOutcome out;
      if (!candidates.empty()) {
        EXPECT_EQ(candidates.size(), 2u);
        out.log_likelihoods = {value_wins ? -2.0 : -9.0, -5.0};
      }
      return out;
    };
    const auto cells = inference::run_ruler(grid, kCodec, hay, runner);
    ASSERT_EQ(cells.size(), 4u);
    for (const inference::RulerCell& c : cells) {
      if (c.task == RulerTask::variable_tracking) {
        EXPECT_EQ(c.choices, 0);
        continue;
      }
      EXPECT_EQ(c.choices, 2);
      EXPECT_EQ(c.recalled, value_wins ? 2 : 0);
      EXPECT_DOUBLE_EQ(c.choice_accuracy(), value_wins ? 100.0 : 0.0);
      EXPECT_GT(c.answer_nll_sum, 0.0);
      EXPECT_DOUBLE_EQ(c.margin_sum, value_wins ? 2 * 3.0 : 2 * -4.0);
    }
  }
  const auto silent = [](std::span<const std::int32_t>, int) { return std::vector<std::int32_t>{}; };
  for (const inference::RulerCell& c : inference::run_ruler(grid, kCodec, hay, silent)) EXPECT_EQ(c.choices, 0);
}

TEST(Ruler, BadGridsAndTooShortPromptsAreErrors) {
  expect_error_naming([] { inference::validate({{}, {100}, {0}, 1, 1}); }, {"no RULER tasks"});
  expect_error_naming([] { inference::validate({{RulerTask::niah_multikey}, {100}, {101}, 1, 1}); },
                      {"depth", "[0, 100]", "101"});
  expect_error_naming([] { inference::validate({{RulerTask::niah_multikey}, {100}, {0}, 0, 1}); }, {"--samples"});
  expect_error_naming([] { prompt(RulerTask::niah_multikey, 100, 0); },
                      {"niah_multikey prompt of 100 tokens cannot hold", "--context"});
  expect_error_naming(
      [] {
        Rng rng(1);
        inference::make_ruler_prompt(RulerTask::niah_single_number, kCodec, {}, 1000, 0,
                                     inference::AnswerPrefix::needle, rng);
      },
      {"haystack is empty"});
}

TEST(Ruler, TheRulerAnswerPrefixEndsThePromptWithRulersWords) {
  Rng rng(3);
  const inference::RulerPrompt p = inference::make_ruler_prompt(RulerTask::niah_single_word, kCodec, haystack(), 900,
                                                                50, inference::AnswerPrefix::ruler, rng);
  EXPECT_TRUE(text_of(p).ends_with("mentioned in the provided text are")) << text_of(p).substr(800);
  EXPECT_TRUE(text_of(prompt(RulerTask::niah_single_word, 900, 50)).ends_with(" is:"));
}

}  // namespace
}  // namespace hax::testing
