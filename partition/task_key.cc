// Reading canonical task keys back into tasks (the results file's
// configuration lists its tasks by key; `report` answers them from there).
#include <cctype>
#include <cstdlib>
#include <sstream>

#include "io/error.h"
#include "partition/task.h"

namespace diffsearch::partition {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) out.push_back(part);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

// A number as format_number writes it (and nothing more after it).
bool read_number(const std::string& text, double& value) {
  if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '.')) return false;
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// platform_key's inverse: '_' is a space, %XX a byte.
bool read_platform(const std::string& text, std::string& platform) {
  platform.clear();
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '_') {
      platform += ' ';
    } else if (text[i] == '%') {
      if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
        return false;
      }
      platform += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      platform += text[i];
    }
  }
  return !platform.empty();
}

}  // namespace

Task parse_task_key(const std::string& key) {
  const auto bad = [&](const std::string& what) -> InputError {
    return InputError("task key \"" + key + "\": " + what +
                      " (keys look like sd15/ddim/50/deepcache/x3.04/loss0.02, sd15/ddim/50/basic)");
  };
  const auto parts = split(key, '/');
  if (parts.size() < 4) throw bad("expected model/sampler/steps/methods[/goal][/loss]");
  Task t;
  if (const auto m = find_model(parts[0])) t.model = *m;
  else throw bad("unknown model \"" + parts[0] + "\"");
  if (const auto s = find_sampler(parts[1])) t.sampler = *s;
  else throw bad("unknown sampler \"" + parts[1] + "\"");
  if (parts[2].empty() || parts[2].size() > 4 || parts[2].find_first_not_of("0123456789") != std::string::npos) {
    throw bad("steps \"" + parts[2] + "\" is not a number");
  }
  t.steps = std::stoi(parts[2]);
  if (parts[3] != "basic") {
    for (const auto& name : split(parts[3], '+')) {
      const auto m = find_method(name);
      if (!m) throw bad("unknown method \"" + name + "\"");
      // Canonical order (DeepCache, T-Gate, ToMe), each once.
      if (!t.methods.empty() && *m <= t.methods.back()) throw bad("methods not in canonical order, or repeated");
      t.methods.push_back(*m);
    }
  }
  std::size_t i = 4;
  if (i < parts.size() && parts[i] != "max" && parts[i].rfind("loss", 0) != 0) {
    const std::string& goal = parts[i];
    double v = 0;
    if (goal[0] == 'x' && read_number(goal.substr(1), v)) {
      t.speedup = v;
    } else if (goal.rfind("lat", 0) == 0 && goal.find("s@") != std::string::npos) {
      const std::size_t at = goal.find("s@");
      std::string platform;
      if (!read_number(goal.substr(3, at - 3), v) || !read_platform(goal.substr(at + 2), platform)) {
        throw bad("goal \"" + goal + "\" is not lat<seconds>s@<platform>");
      }
      t.latency_s = v;
      t.platform = platform;
    } else {
      throw bad("goal \"" + goal + "\" is not x<speedup>, max or lat<seconds>s@<platform>");
    }
    ++i;
  } else if (i < parts.size() && parts[i] == "max") {
    ++i;
  }
  if (i < parts.size()) {
    double v = 0;
    if (parts[i].rfind("loss", 0) != 0 || !read_number(parts[i].substr(4), v)) {
      throw bad("\"" + parts[i] + "\" is not loss<bound>");
    }
    t.max_score_loss = v;
    ++i;
  }
  if (i != parts.size()) throw bad("unexpected \"" + parts[i] + "\" at the end");
  // The canonical form is the only spelling of a task.
  if (task_key(t) != key) throw bad("not in canonical form (it would be " + task_key(t) + ")");
  return t;
}

}  // namespace diffsearch::partition
