// What a recorded exhaustive landscape shows, for deciding what the frontier
// strategy may assume (docs/search.md, "The assumptions and their switches"):
//   - monotonicity: for every parameter with a declared direction of
//     aggressiveness (ParamSpec::aggressive), every pair of settings of a
//     space that differ only in that parameter, at neighbouring values: how
//     often the more aggressive one loses less, and how often by more than
//     twice the standard error of the pair's paired per-prompt differences
//     (a reversal the prompts cannot explain);
//   - the same for speed (the more aggressive setting slower);
//   - noise across prompts: per setting, the spread of per-prompt losses
//     against their mean, and per neighbouring pair, the standard error of
//     the paired difference against the difference itself.
// Usage: bench_landscape FILE.h5 [--quality clip|ssim|psnr] [-v]
// (the measure defaults to the one the file was searched by).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/quality.h"
#include "io/result_store.h"
#include "partition/search_space.h"
#include "partition/task.h"

using namespace diffsearch;

namespace {

struct Point {
  std::string setting_key;
  nlohmann::json params;         // method -> parameter -> value
  std::vector<double> losses;    // per prompt: (base - acc) / mean base, so they average to the loss
  double loss = 0;
  double speedup = 0;
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct AxisCount {
  int pairs = 0;
  int loss_reversed = 0, loss_reversed_significant = 0;
  int speed_reversed = 0;
  double worst_reversal = 0;  // the largest loss drop going more aggressive
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.h5 [--quality clip|ssim|psnr] [-v]\n", argv[0]);
    return 2;
  }
  try {
    const std::string file = argv[1];
    std::string quality_name;
    bool verbose = false;
    for (int i = 2; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--quality" && i + 1 < argc) quality_name = argv[++i];
      else if (a == "-v") verbose = true;
      else throw std::runtime_error("unknown argument " + a);
    }
    const io::ResultsContents contents = io::read_results(file);
    const coordinator::Quality quality = coordinator::parse_quality(
        quality_name.empty() ? contents.config.value("quality", std::string("clip")) : quality_name);
    // Points per space, full measurements only (the whole prompt list).
    std::map<std::string, std::vector<Point>> spaces;
    std::map<std::string, std::string> methods_of;
    for (const auto& r : contents.rows) {
      if (r.status != "ok" || r.methods.empty() || r.prompt_begin != 0 || r.prompt_end != r.num_samples) continue;
      Point p;
      p.setting_key = r.setting;
      p.params = nlohmann::json::parse(r.setting);
      std::vector<coordinator::QualityScores> scores;
      double base_sum = 0;
      for (const auto& ps : r.prompts) {
        scores.push_back(coordinator::quality_scores(quality, ps));
        base_sum += scores.back().base;
      }
      const double base_mean = scores.empty() ? 1 : base_sum / static_cast<double>(scores.size());
      for (const auto& s : scores) p.losses.push_back((s.base - s.acc) / base_mean);
      p.loss = coordinator::row_loss(quality, r);
      p.speedup = contents.config.value("speed_measure", std::string("wall")) == "macs" ? r.speedup_macs : r.speedup;
      spaces[r.space_key].push_back(std::move(p));
      methods_of[r.space_key] = r.methods;
    }
    std::printf("%s: %zu spaces, loss by %s, speed by %s\n", file.c_str(), spaces.size(),
                coordinator::quality_name(quality).c_str(), contents.config.value("speed_measure", std::string("wall")).c_str());
    for (const auto& [space, points] : spaces) {
      std::vector<double> rel_spread, losses;
      for (const auto& p : points) {
        losses.push_back(p.loss);
        if (p.loss > 1e-9) rel_spread.push_back(stddev(p.losses) / p.loss);
      }
      std::printf("\n== %s (%s): %zu settings, loss %.4g .. %.4g (median %.4g), speedup %.3g .. %.3g\n",
                  space.c_str(), methods_of[space].c_str(), points.size(),
                  *std::min_element(losses.begin(), losses.end()), *std::max_element(losses.begin(), losses.end()),
                  median(losses), std::min_element(points.begin(), points.end(), [](auto& a, auto& b) { return a.speedup < b.speedup; })->speedup,
                  std::max_element(points.begin(), points.end(), [](auto& a, auto& b) { return a.speedup < b.speedup; })->speedup);
      std::printf("   noise across prompts: per-prompt loss spread / mean loss, median %.2f over settings\n",
                  median(rel_spread));
      // Neighbouring pairs along each directed parameter.
      std::map<std::string, AxisCount> axes;
      std::vector<double> pair_noise;  // standard error of the paired difference / |difference|
      for (std::size_t i = 0; i < points.size(); ++i) {
        for (std::size_t j = 0; j < points.size(); ++j) {
          if (i == j) continue;
          const auto& a = points[i];
          const auto& b = points[j];
          // b differs from a in exactly one parameter.
          std::string method, param;
          int differing = 0;
          for (const auto& [m, ps] : a.params.items()) {
            if (!b.params.contains(m)) { differing = 2; break; }
            for (const auto& [name, v] : ps.items()) {
              if (!b.params[m].contains(name) || b.params[m][name] != v) {
                ++differing;
                method = m;
                param = name;
              }
            }
          }
          if (differing != 1) continue;
          const partition::Method meth = partition::parse_method(method);
          int direction = 0;
          for (const auto& spec : partition::method_params(meth)) {
            if (spec.name == param) direction = spec.aggressive;
          }
          if (direction == 0) continue;
          const double va = a.params[method][param].get<double>(), vb = b.params[method][param].get<double>();
          // b is the next value up in the direction of aggressiveness.
          if ((vb - va) * direction <= 0) continue;
          bool neighbour = true;
          for (const auto& c : points) {
            if (&c == &a || &c == &b) continue;
            int diff = 0;
            std::string m2, p2;
            for (const auto& [m, ps] : a.params.items()) {
              if (!c.params.contains(m)) { diff = 2; break; }
              for (const auto& [name, v] : ps.items()) {
                if (!c.params[m].contains(name) || c.params[m][name] != v) ++diff, m2 = m, p2 = name;
              }
            }
            if (diff == 1 && m2 == method && p2 == param) {
              const double vc = c.params[method][param].get<double>();
              if ((vc - va) * direction > 0 && (vb - vc) * direction > 0) neighbour = false;
            }
          }
          if (!neighbour) continue;
          auto& axis = axes[method + "." + param];
          ++axis.pairs;
          std::vector<double> diffs;
          for (std::size_t k = 0; k < a.losses.size() && k < b.losses.size(); ++k) diffs.push_back(b.losses[k] - a.losses[k]);
          const double d = b.loss - a.loss;
          const double se = diffs.size() > 1 ? stddev(diffs) / std::sqrt(static_cast<double>(diffs.size())) : 0;
          if (std::fabs(d) > 1e-12) pair_noise.push_back(se / std::fabs(d));
          if (d < 0) {
            ++axis.loss_reversed;
            axis.worst_reversal = std::max(axis.worst_reversal, -d);
            if (-d > 2 * se) ++axis.loss_reversed_significant;
            if (verbose) {
              std::printf("   reversal %s: %s -> %s loses %.4g less (se %.2g)\n", (method + "." + param).c_str(),
                          a.setting_key.c_str(), b.setting_key.c_str(), -d, se);
            }
          }
          if (b.speedup < a.speedup) ++axis.speed_reversed;
        }
      }
      std::printf("   neighbouring pairs: paired standard error / |loss difference|, median %.2f\n", median(pair_noise));
      std::printf("   %-28s %6s %14s %14s %12s %14s\n", "parameter", "pairs", "loss reversed", "significant", "worst drop",
                  "speed reversed");
      for (const auto& [name, c] : axes) {
        std::printf("   %-28s %6d %6d (%4.1f%%) %6d (%4.1f%%) %12.4g %6d (%4.1f%%)\n", name.c_str(), c.pairs,
                    c.loss_reversed, 100.0 * c.loss_reversed / std::max(1, c.pairs), c.loss_reversed_significant,
                    100.0 * c.loss_reversed_significant / std::max(1, c.pairs), c.worst_reversal, c.speed_reversed,
                    100.0 * c.speed_reversed / std::max(1, c.pairs));
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
