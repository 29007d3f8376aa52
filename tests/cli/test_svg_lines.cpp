// The SVG line chart of `hax sweep`'s curves: nice ticks, one polyline per series with points, a legend entry per
// legend series, escaped text, and a well-formed document.
#include <gtest/gtest.h>

#include <algorithm>

#include "cli_support.h"
#include "hax/io/svg_lines.h"

namespace hax::testing {
namespace {

TEST(SvgLines, NiceTicksCoverTheRangeInRoundSteps) {
  EXPECT_EQ(io::nice_ticks(0, 100), (std::vector<double>{0, 20, 40, 60, 80, 100}));
  EXPECT_EQ(io::nice_ticks(0, 3), (std::vector<double>{0, 1, 2, 3}));
  EXPECT_EQ(io::nice_ticks(500, 10000), (std::vector<double>{0, 2000, 4000, 6000, 8000, 10000}));
  EXPECT_GE(io::nice_ticks(5, 5).size(), 2u);  // an empty range is widened, not divided by zero
}

TEST(SvgLines, DrawsEachSeriesAndTheLegend) {
  io::LineChart chart;
  chart.title = "A & B";
  chart.x_axis = "update";
  chart.y_axis = "accuracy (%)";
  chart.y_min = 0;
  chart.y_max = 100;
  chart.series.push_back({"plain", {{0, 10}, {500, 30}, {1000, 60}}, 0, false, 2.0, true});
  chart.series.push_back({"hax <causal>", {{0, 12}, {1000, 90}}, 1, true, 1.2, true});
  chart.series.push_back({"hidden seed", {{0, 5}, {1000, 7}}, 1, true, 1.2, false});
  chart.series.push_back({"legend only", {}, 2, false, 2.0, true});
  const std::string svg = io::line_chart_svg(chart);
  const std::vector<std::string> elements = xml_elements(svg);
  ASSERT_FALSE(elements.empty());
  EXPECT_EQ(elements.front(), "svg");
  EXPECT_EQ(std::count(elements.begin(), elements.end(), "polyline"), 3);
  for (const char* text : {"A &amp; B", "hax &lt;causal&gt;", "legend only", "update", "accuracy (%)", ">1000<",
                           ">100<", "stroke-dasharray"})
    EXPECT_NE(svg.find(text), std::string::npos) << text;
  std::size_t legend = 0;
  for (auto at = svg.find("class=\"legend\""); at != std::string::npos; at = svg.find("class=\"legend\"", at + 1))
    ++legend;
  EXPECT_EQ(legend, 3u);
}

}  // namespace
}  // namespace hax::testing
