// What `hax lm eval` reports: perplexity by position on held-out text cut into sequences up to several times the
// training context, and the RULER-style grid (inference/ruler.h), as results.json, results.md (lengths as rows,
// tasks as columns, like the paper's Tables 2 and 4), one SVG heatmap per task (length x depth) and a line SVG of
// the NLL by position.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hax/data/tokens_file.h"
#include "hax/inference/ruler.h"
#include "hax/inference/score.h"
#include "hax/io/svg_heatmap.h"
#include "hax/io/svg_lines.h"

namespace hax::inference {

// Up to `max_sequences` consecutive, non-overlapping sequences of `length` tokens from the start of `stream`; one
// shorter sequence (all of it) when the stream holds fewer than `length` tokens. hax::Error when it is empty.
std::vector<data::TokenSequence> position_sequences(std::span<const std::int32_t> stream, int length,
                                                    int max_sequences);

struct LongContextReport {
  nlohmann::json run;   // what was run: command, checkpoint, corpus, threads, ... (copied into results.json)
  int context = 0;      // the training context the lengths are multiples of
  RulerGrid grid;
  std::vector<RulerCell> cells;  // run_ruler's, in its order
  ScoreResult perplexity;        // by position (bucket_width > 0)
  int bucket_width = 0;
  std::uint64_t perplexity_sequences = 0;
  double wall_seconds = 0;
};

// A task's accuracy (percent) at one length, over every depth; and the mean over the report's tasks.
double task_accuracy(const LongContextReport& r, RulerTask task, int length);
double average_accuracy(const LongContextReport& r, int length);

// The forced choice (RulerAnswerChoice) of a task at one length, over every depth; NaN where no sample had one
// (variable tracking; `ruler` answer prefix). The average is over the tasks that have one.
struct ChoiceSummary {
  int choices = 0, recalled = 0;
  double answer_nll_sum = 0, margin_sum = 0;
  double accuracy() const;    // percent of choices won by the needle's value (chance: 50)
  double answer_nll() const;  // mean over choices of the value's NLL per token (nats)
  double margin() const;      // mean over choices of the value's log-likelihood minus the foil's (nats)
};
ChoiceSummary task_choice(const LongContextReport& r, RulerTask task, int length);
double average_choice_accuracy(const LongContextReport& r, int length);

nlohmann::json report_json(const LongContextReport& r);
std::string report_markdown(const LongContextReport& r);
io::Heatmap task_heatmap(const LongContextReport& r, RulerTask task);  // rows: lengths, columns: depths
io::LineChart perplexity_chart(const LongContextReport& r);

// Writes results.json, results.md, ruler_<task>.svg per task and perplexity_by_position.svg into `dir` (created if
// missing), each file atomically. Returns the paths written.
std::vector<std::filesystem::path> write_report(const std::filesystem::path& dir, const LongContextReport& r);

}  // namespace hax::inference
