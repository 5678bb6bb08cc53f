// The report's charts as inline SVG, written here rather than by a charting
// library: two chart kinds, static markup that needs no script to show, and
// nothing fetched (docs/report.md says why). Every text from the results file
// goes through render::html_text.
#pragma once

#include <string>

#include "report/report_data.h"

namespace diffsearch::report {

// One space's speed/quality plane: every measured setting (class "pt": a
// circle per full measurement, one path of dots for all the prompt-prefix
// ones, whose data-n counts them), the Pareto front of the full
// ones, each task's answer ringed (class "ans"), the loss bounds and speedup
// targets as dashed lines. `speed_measure` names the x axis, `quality` the y.
std::string plane_svg(const SpaceView& space, const std::string& speed_measure, const std::string& quality = "clip");

// What the loss of `quality` ("clip", "ssim", "psnr") is, for axes and notes.
std::string loss_name(const std::string& quality);

// Each worker's rows over time, one lane per worker, bars colored by method
// combination (failed rows outlined in red).
std::string timeline_svg(const ReportData& data);

// The color of a method combination ("deepcache+tome"; "" for baselines).
std::string methods_color(const std::string& methods);

// "1.23", "0.0200": fixed decimals; "-" for NaN.
std::string fixed(double value, int decimals);

}  // namespace diffsearch::report
