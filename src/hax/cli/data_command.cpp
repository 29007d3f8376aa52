// hax data info | cat: inspect a binary dataset (validating it in full on the way) or print it as text.
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "hax/cli/commands.h"
#include "hax/engine/error.h"
#include "hax/data/dataset_binary.h"
#include "hax/data/dataset_text.h"

namespace hax::cli {
namespace {

struct CatOptions {
  std::string path;
  std::int64_t offset = 0;
  std::int64_t count = -1;  // -1: to the end
};

void print_cells(const data::BinaryDataset& dataset, std::ostream& out) {
  std::map<data::Cell, std::uint64_t> samples_per_cell;
  for (std::uint64_t i = 0; i < dataset.size(); ++i) ++samples_per_cell[dataset.cell(i)];
  out << "cells:       " << samples_per_cell.size() << " (n_context x n_key: samples)\n";
  int column = 0;
  for (const auto& [cell, samples] : samples_per_cell) {
    out << (column == 0 ? " " : "") << " " << cell.n_context << "x" << cell.n_key << ": " << samples;
    if (++column == 8) {
      out << "\n";
      column = 0;
    }
  }
  if (column != 0) out << "\n";
}

void run_info(const std::string& path) {
  const data::BinaryDataset dataset(path);
  const data::BinaryDatasetHeader& header = dataset.header();
  std::uint64_t tokens = 0, scored = 0;
  for (std::uint64_t i = 0; i < dataset.size(); ++i) {
    const data::Sample sample = dataset.sample(i);
    tokens += sample.tokens.size();
    for (std::uint8_t bit : sample.mask) scored += bit;
  }
  std::ostream& out = std::cout;
  out << "file:        " << path << "\n"
      << "format:      hax binary dataset v" << header.version << ", " << header.file_size << " bytes, checksum 0x"
      << std::hex << header.checksum << std::dec << " (verified)\n"
      << "task:        " << dataset.info().task << "\n"
      << "params:      " << dataset.info().params.dump() << "\n"
      << "samples:     " << dataset.size() << "\n"
      << "pad_len:     " << header.pad_len << " (pad id " << header.pad_id << ")\n"
      << "vocab:       " << header.vocab_size << " (" << header.token_width << "-byte tokens)\n"
      << "tokens:      " << tokens << " unpadded, " << scored << " scored\n";
  print_cells(dataset, out);
}

void run_cat(const CatOptions& options) {
  const data::BinaryDataset dataset(options.path);
  check(options.offset >= 0 && static_cast<std::uint64_t>(options.offset) <= dataset.size(), "--offset ",
        options.offset, " is outside the ", dataset.size(), " samples of '", options.path, "'");
  const auto first = static_cast<std::uint64_t>(options.offset);
  const std::uint64_t end = options.count < 0 ? dataset.size() : first + static_cast<std::uint64_t>(options.count);
  check(end <= dataset.size(), "--offset ", first, " + --count ", options.count, " runs past the ", dataset.size(),
        " samples of '", options.path, "'");
  data::TextDatasetWriter writer(std::cout, dataset.pad_len(), dataset.pad_id());
  for (std::uint64_t i = first; i < end; ++i) writer.add(dataset.sample(i));
  std::cout.flush();
  check(std::cout.good(), "cannot write to stdout");
}

}  // namespace

void register_data_commands(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Inspect and convert datasets");
  data->require_subcommand(1);

  auto* info = data->add_subcommand("info", "Print a binary dataset's header, counts and cells (validates it)");
  auto info_path = std::make_shared<std::string>();
  info->add_option("file", *info_path, "Binary dataset")->required();
  info->callback([info_path] { run_info(*info_path); });

  auto* cat = data->add_subcommand("cat", "Print a binary dataset in the two-lines-per-sample text format");
  auto cat_options = std::make_shared<CatOptions>();
  cat->add_option("file", cat_options->path, "Binary dataset")->required();
  cat->add_option("--offset", cat_options->offset, "First sample");
  cat->add_option("--count", cat_options->count, "Number of samples (default: to the end)");
  cat->callback([cat_options] { run_cat(*cat_options); });
}

}  // namespace hax::cli
