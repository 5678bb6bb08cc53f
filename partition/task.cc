// Parsing and printing of task sentences, canonical keys and task files.
// The grammar is documented in docs/task-language.md; keep the two in step.
#include "partition/task.h"

#include <algorithm>
#include <cstdint>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "io/error.h"
#include "io/utf8.h"

namespace diffsearch::partition {

namespace {

std::string lower(const std::string& s) {
  std::string out = s;
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Alias normal form: lower case without the separators people vary on.
std::string normalize_alias(const std::string& s, bool keep_dot) {
  std::string out;
  for (char c : s) {
    if (c == ' ' || c == '-' || c == '_' || c == '/' || c == '\t') continue;
    if (c == '.' && !keep_dot) continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

const char* kModelChoices =
    "SD1.5, SD2.1 or SDXL (aliases such as sd15, \"Stable Diffusion 1.5\", SD 2.1, "
    "stable-diffusion-xl)";
const char* kSamplerChoices =
    "DDIM, DPM-Solver++ (DPMSolverMultistep) or UniPC (UniPCMultistepScheduler)";
const char* kMethodChoices =
    "DeepCache, T-Gate (TGATE) or ToMe, or a combination written \"A and B\" or "
    "\"A, B, and C\"";
const char* kGoals =
    "the sentence may go on only with a goal: \"with <S>x speedup\", \"and precision loss "
    "not exceeding <L>\" or \"with <T>s latency on <GPU name>\"";
const char* kExample =
    "\"Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by "
    "DeepCache with 3.04x speedup and precision loss not exceeding 0.02\"";

}  // namespace

const std::vector<Model>& all_models() {
  static const std::vector<Model> v = {Model::SD15, Model::SD21, Model::SDXL};
  return v;
}
const std::vector<SamplerKind>& all_samplers() {
  static const std::vector<SamplerKind> v = {SamplerKind::DDIM, SamplerKind::DPMSolverPP,
                                             SamplerKind::UniPC};
  return v;
}
const std::vector<Method>& all_methods() {
  static const std::vector<Method> v = {Method::DeepCache, Method::TGate, Method::ToMe};
  return v;
}

std::string model_name(Model model) {
  switch (model) {
    case Model::SD15: return "SD1.5";
    case Model::SD21: return "SD2.1";
    case Model::SDXL: return "SDXL";
  }
  DIFFSEARCH_ASSERT(false);
  return {};
}
std::string model_slug(Model model) {
  switch (model) {
    case Model::SD15: return "sd15";
    case Model::SD21: return "sd21";
    case Model::SDXL: return "sdxl";
  }
  DIFFSEARCH_ASSERT(false);
  return {};
}
std::string sampler_name(SamplerKind sampler) {
  switch (sampler) {
    case SamplerKind::DDIM: return "DDIM";
    case SamplerKind::DPMSolverPP: return "DPM-Solver++";
    case SamplerKind::UniPC: return "UniPC";
  }
  DIFFSEARCH_ASSERT(false);
  return {};
}
std::string sampler_slug(SamplerKind sampler) {
  switch (sampler) {
    case SamplerKind::DDIM: return "ddim";
    case SamplerKind::DPMSolverPP: return "dpmsolver++";
    case SamplerKind::UniPC: return "unipc";
  }
  DIFFSEARCH_ASSERT(false);
  return {};
}
std::string sampler_sentence_name(SamplerKind sampler) {
  switch (sampler) {
    case SamplerKind::DDIM: return "DDIM";
    case SamplerKind::DPMSolverPP: return "DPM-Solver++";
    case SamplerKind::UniPC: return "UniPCMultistepScheduler";
  }
  DIFFSEARCH_ASSERT(false);
  return {};
}
std::string methods_key(const std::vector<Method>& methods) {
  std::string out;
  for (std::size_t i = 0; i < methods.size(); ++i) out += (i ? "+" : "") + method_slug(methods[i]);
  return out;
}

std::string method_name(Method method) {
  switch (method) {
    case Method::DeepCache: return "DeepCache";
    case Method::TGate: return "T-Gate";
    case Method::ToMe: return "ToMe";
  }
  DIFFSEARCH_ASSERT(false);
  return {};
}
std::string method_slug(Method method) {
  switch (method) {
    case Method::DeepCache: return "deepcache";
    case Method::TGate: return "tgate";
    case Method::ToMe: return "tome";
  }
  DIFFSEARCH_ASSERT(false);
  return {};
}

std::optional<Model> find_model(const std::string& text) {
  // Dots dropped: "SD1.5", "sd15" and "stable-diffusion-v1-5" meet.
  const std::string n = normalize_alias(text, false);
  static const std::vector<std::pair<const char*, Model>> aliases = {
      {"sd15", Model::SD15},
      {"sdv15", Model::SD15},
      {"stablediffusion15", Model::SD15},
      {"stablediffusionv15", Model::SD15},
      {"runwaymlstablediffusionv15", Model::SD15},
      {"stablediffusionv1x5", Model::SD15},
      {"sd21", Model::SD21},
      {"sdv21", Model::SD21},
      {"stablediffusion21", Model::SD21},
      {"stablediffusionv21", Model::SD21},
      {"stabilityaistablediffusion21", Model::SD21},
      {"sdxl", Model::SDXL},
      {"sdxl10", Model::SDXL},
      {"sdxlbase", Model::SDXL},
      {"sdxlbase10", Model::SDXL},
      {"stablediffusionxl", Model::SDXL},
      {"stablediffusionxl10", Model::SDXL},
      {"stablediffusionxlbase", Model::SDXL},
      {"stablediffusionxlbase10", Model::SDXL},
      {"stabilityaistablediffusionxlbase10", Model::SDXL},
  };
  for (const auto& [alias, model] : aliases) {
    if (n == alias) return model;
  }
  return std::nullopt;
}

std::optional<SamplerKind> find_sampler(const std::string& text) {
  const std::string n = normalize_alias(text, true);
  static const std::vector<std::pair<const char*, SamplerKind>> aliases = {
      {"ddim", SamplerKind::DDIM},
      {"ddimscheduler", SamplerKind::DDIM},
      {"dpmsolver++", SamplerKind::DPMSolverPP},
      {"dpmsolverpp", SamplerKind::DPMSolverPP},
      {"dpmsolvermultistep", SamplerKind::DPMSolverPP},
      {"dpmsolvermultistepscheduler", SamplerKind::DPMSolverPP},
      {"dpm++", SamplerKind::DPMSolverPP},
      {"dpmpp", SamplerKind::DPMSolverPP},
      {"dpm++2m", SamplerKind::DPMSolverPP},
      {"dpmpp2m", SamplerKind::DPMSolverPP},
      {"dpmsolver++2m", SamplerKind::DPMSolverPP},
      {"unipc", SamplerKind::UniPC},
      {"unipcmultistep", SamplerKind::UniPC},
      {"unipcmultistepscheduler", SamplerKind::UniPC},
      {"unipcscheduler", SamplerKind::UniPC},
  };
  for (const auto& [alias, sampler] : aliases) {
    if (n == alias) return sampler;
  }
  return std::nullopt;
}

std::optional<Method> find_method(const std::string& text) {
  const std::string n = normalize_alias(text, false);
  static const std::vector<std::pair<const char*, Method>> aliases = {
      {"deepcache", Method::DeepCache}, {"tgate", Method::TGate},       {"tome", Method::ToMe},
      {"tomesd", Method::ToMe},         {"tokenmerging", Method::ToMe},
  };
  for (const auto& [alias, method] : aliases) {
    if (n == alias) return method;
  }
  return std::nullopt;
}

Model parse_model(const std::string& text) {
  if (auto m = find_model(text)) return *m;
  throw InputError("unknown model \"" + text + "\": expected " + kModelChoices);
}
SamplerKind parse_sampler(const std::string& text) {
  if (auto s = find_sampler(text)) return *s;
  throw InputError("unknown sampler \"" + text + "\": expected " + kSamplerChoices);
}
Method parse_method(const std::string& text) {
  if (auto m = find_method(text)) return *m;
  throw InputError("unknown method \"" + text + "\": expected DeepCache, T-Gate (TGATE) or ToMe");
}

int default_resolution(Model model) {
  switch (model) {
    case Model::SD15: return 512;
    case Model::SD21: return 768;
    case Model::SDXL: return 1024;
  }
  DIFFSEARCH_ASSERT(false);
  return 0;
}

int down_block_count(Model model) { return model == Model::SDXL ? 3 : 4; }

int Task::category() const {
  if (latency_s) return 5;
  if (speedup) return 4;
  if (methods.empty()) return 1;
  return methods.size() == 1 ? 2 : 3;
}

bool Task::operator==(const Task& o) const {
  return model == o.model && sampler == o.sampler && steps == o.steps && methods == o.methods &&
         speedup == o.speedup && max_score_loss == o.max_score_loss && latency_s == o.latency_s &&
         platform == o.platform;
}

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";
  // Shortest scientific form that reads back to the same double.
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*e", precision - 1, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  std::string s = buf;
  std::string sign;
  if (s[0] == '-') {
    sign = "-";
    s = s.substr(1);
  }
  const size_t e_pos = s.find('e');
  DIFFSEARCH_ASSERT(e_pos != std::string::npos);
  const int exponent = std::atoi(s.c_str() + e_pos + 1);
  std::string digits;
  for (size_t i = 0; i < e_pos; ++i) {
    if (std::isdigit(static_cast<unsigned char>(s[i]))) digits += s[i];
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  // Python's repr switches to scientific notation outside [1e-4, 1e16).
  if (exponent < -4 || exponent >= 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp_buf;
  }
  if (exponent < 0) {
    return sign + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  }
  const size_t int_len = static_cast<size_t>(exponent) + 1;
  std::string int_part, frac_part;
  if (digits.size() <= int_len) {
    int_part = digits + std::string(int_len - digits.size(), '0');
    frac_part = "0";
  } else {
    int_part = digits.substr(0, int_len);
    frac_part = digits.substr(int_len);
  }
  return sign + int_part + "." + frac_part;
}

// ---------------------------------------------------------------------------
// Parsing.

namespace {

struct Token {
  std::string text;  // as written (quotes removed)
  std::string low;   // lower case
  bool quoted = false;
};

// Words, with commas as tokens of their own, "quoted text" as one token, a
// final full stop dropped, and "DeepCache+ToMe" split at '+' (but not
// "DPM-Solver++", whose '+' parts would be empty).
std::vector<Token> tokenize(const std::string& sentence) {
  std::vector<Token> raw;
  size_t i = 0;
  const size_t n = sentence.size();
  auto push = [&](const std::string& t, bool quoted) {
    if (t.empty() && !quoted) return;
    raw.push_back({t, lower(t), quoted});
  };
  while (i < n) {
    const char c = sentence[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == ',') {
      push(",", false);
      ++i;
    } else if (c == '"') {
      const size_t close = sentence.find('"', i + 1);
      if (close == std::string::npos) {
        throw InputError("unclosed quote in task sentence: \"" + sentence.substr(i) +
                         "\"; close it, as in on \"NVIDIA H200\"");
      }
      push(sentence.substr(i + 1, close - i - 1), true);
      i = close + 1;
    } else {
      size_t j = i;
      while (j < n && !std::isspace(static_cast<unsigned char>(sentence[j])) &&
             sentence[j] != ',' && sentence[j] != '"') {
        ++j;
      }
      push(sentence.substr(i, j - i), false);
      i = j;
    }
  }
  // A sentence may end with a full stop, attached ("0.02.") or alone.
  if (!raw.empty() && !raw.back().quoted) {
    if (raw.back().text == ".") {
      raw.pop_back();
    } else if (raw.back().text.size() > 1 && raw.back().text.back() == '.') {
      raw.back().text.pop_back();
      raw.back().low.pop_back();
    }
  }
  std::vector<Token> out;
  for (const auto& t : raw) {
    if (!t.quoted && t.text.find('+') != std::string::npos && t.text.size() > 1) {
      std::vector<std::string> parts;
      size_t start = 0;
      bool any_empty = false;
      while (true) {
        const size_t plus = t.text.find('+', start);
        const std::string part =
            t.text.substr(start, plus == std::string::npos ? std::string::npos : plus - start);
        if (part.empty()) any_empty = true;
        parts.push_back(part);
        if (plus == std::string::npos) break;
        start = plus + 1;
      }
      // Only method lists are split ("DeepCache+ToMe"); numbers such as
      // "1e+16x" and names such as "DPM-Solver++" keep their '+'.
      bool all_methods = !any_empty;
      for (const auto& part : parts) {
        if (all_methods && !find_method(part)) all_methods = false;
      }
      if (all_methods) {
        for (size_t k = 0; k < parts.size(); ++k) {
          if (k > 0) out.push_back({"+", "+", false});
          out.push_back({parts[k], lower(parts[k]), false});
        }
        continue;
      }
    }
    out.push_back(t);
  }
  return out;
}

std::string quote(const std::string& s) { return "\"" + s + "\""; }

bool parse_double(const std::string& text, double& out) {
  if (text.empty()) return false;
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(begin, &end);
  if (end != begin + text.size() || errno == ERANGE) return false;
  // strtod accepts "nan", "inf" and hex; task numbers are plain decimals.
  for (char c : text) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' ||
          c == 'e' || c == 'E')) {
      return false;
    }
  }
  if (!std::isfinite(v)) return false;
  out = v;
  return true;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Task parse() {
    Task task;
    parse_model(task);
    parse_sampler(task);
    parse_steps(task);
    parse_methods(task);
    parse_goals(task);
    validate(task);
    return task;
  }

 private:
  std::vector<Token> t_;
  size_t pos_ = 0;
  bool loss_given_ = false;
  std::string loss_word_;
  std::string speedup_word_;  // as written, for messages

  bool at_end() const { return pos_ >= t_.size(); }
  const Token* peek(size_t ahead = 0) const {
    return pos_ + ahead < t_.size() ? &t_[pos_ + ahead] : nullptr;
  }
  bool is(size_t ahead, const char* word) const {
    const Token* tok = peek(ahead);
    return tok && !tok->quoted && tok->low == word;
  }
  bool accept(const char* word) {
    if (is(0, word)) {
      ++pos_;
      return true;
    }
    return false;
  }
  // The word before the current position, for "after ..." in messages.
  std::string previous() const {
    return pos_ > 0 ? quote(t_[pos_ - 1].text) : std::string("the start");
  }
  std::string found() const {
    return at_end() ? std::string("the end of the sentence") : quote(t_[pos_].text);
  }
  [[noreturn]] void fail_expected(const std::string& what) const {
    throw InputError("expected " + what + " after " + previous() + ", found " + found() +
                     "; a task reads like " + kExample);
  }

  void parse_model(Task& task) {
    accept("generate");
    if (!accept("a")) accept("an");
    accept("the");
    // The model name runs up to "pipeline" (or "using"/"with"/","), and may be
    // several words: "Stable Diffusion 1.5".
    const size_t start = pos_;
    while (!at_end() && !is(0, "pipeline") && !is(0, "model") && !is(0, "using") &&
           !is(0, "with") && !is(0, ",") && !is(0, "sampler") && pos_ - start < 6) {
      ++pos_;
    }
    if (pos_ == start) {
      if (at_end()) {
        throw InputError("missing model at the end of the sentence: expected " +
                         std::string(kModelChoices) + "; a task reads like " + kExample);
      }
      throw InputError("missing model before " + found() + ": expected " + kModelChoices);
    }
    std::string span;
    for (size_t k = start; k < pos_; ++k) span += (k > start ? " " : "") + t_[k].text;
    const auto model = find_model(span);
    if (!model) throw InputError("unknown model " + quote(span) + ": expected " + kModelChoices);
    task.model = *model;
    if (!accept("pipeline")) accept("model");
  }

  void parse_sampler(Task& task) {
    accept(",");
    if (!accept("using") && !accept("with")) {
      fail_expected("\"using the <sampler>\" (DDIM, DPM-Solver++ or UniPC)");
    }
    if (!accept("the")) accept("a");
    const size_t start = pos_;
    while (!at_end() && !is(0, "sampler") && !is(0, "scheduler") && !is(0, "with") && !is(0, ",") &&
           !is(0, "and") && pos_ - start < 4) {
      ++pos_;
    }
    if (pos_ == start) {
      if (at_end()) {
        throw InputError("missing sampler at the end of the sentence: expected " +
                         std::string(kSamplerChoices));
      }
      throw InputError("missing sampler before " + found() + ": expected " + kSamplerChoices);
    }
    double number = 0;
    if (parse_double(t_[start].text, number)) {  // "with 50 steps" came first
      pos_ = start;
      throw InputError("missing sampler before " + found() +
                       ": expected \"using the <sampler> "
                       "sampler with <N> steps\", the sampler one of " +
                       kSamplerChoices);
    }
    std::string span;
    for (size_t k = start; k < pos_; ++k) span += (k > start ? " " : "") + t_[k].text;
    const auto sampler = find_sampler(span);
    if (!sampler)
      throw InputError("unknown sampler " + quote(span) + ": expected " + kSamplerChoices);
    task.sampler = *sampler;
    if (!accept("sampler")) accept("scheduler");
  }

  void parse_steps(Task& task) {
    accept(",");
    if (!accept("with")) fail_expected("\"with <N> steps\"");
    if (at_end()) fail_expected("a number of steps");
    const std::string word = t_[pos_].text;
    bool digits = !word.empty();
    size_t first = (word[0] == '-' || word[0] == '+') ? 1 : 0;
    if (first >= word.size()) digits = false;
    for (size_t k = first; k < word.size(); ++k) {
      if (!std::isdigit(static_cast<unsigned char>(word[k]))) digits = false;
    }
    const std::string range = "expected a whole number of steps from 1 to " +
                              std::to_string(kMaxSteps) + ", as in \"with 50 steps\"";
    if (!digits) throw InputError("steps " + quote(word) + " is not a whole number: " + range);
    // More than 6 significant digits is out of range anyway; strtol of a
    // 20-digit string would overflow.
    const std::string magnitude = word.substr(first);
    const bool negative = word[0] == '-';
    const size_t significant = magnitude.find_first_not_of('0');
    const long value = significant == std::string::npos ? 0L
                       : magnitude.size() - significant > 6
                           ? kMaxSteps + 1L
                           : std::strtol(magnitude.c_str(), nullptr, 10);
    if (negative || value < 1 || value > kMaxSteps) {
      throw InputError("steps " + quote(word) + " out of range: " + range);
    }
    task.steps = static_cast<int>(value);
    ++pos_;
    // "inference steps", "sampling steps", "denoising steps" read the same.
    if (!accept("inference") && !accept("sampling")) accept("denoising");
    if (!accept("steps") && !accept("step")) fail_expected("\"steps\"");
  }

  bool is_method_at(size_t ahead, size_t* width) const {
    const Token* a = peek(ahead);
    if (!a || a->quoted) return false;
    const Token* b = peek(ahead + 1);
    if (b && !b->quoted && find_method(a->text + b->text)) {
      *width = 2;
      return true;
    }
    if (find_method(a->text)) {
      *width = 1;
      return true;
    }
    return false;
  }

  void parse_methods(Task& task) {
    const size_t save = pos_;
    accept(",");
    if (!accept("accelerated")) {
      pos_ = save;
      return;
    }
    if (!accept("by") && !accept("with") && !accept("using")) {
      fail_expected("\"by\" and the methods (" + std::string(kMethodChoices) + ")");
    }
    std::vector<Method> methods;
    while (true) {
      size_t width = 0;
      if (!is_method_at(0, &width)) {
        if (at_end()) {
          throw InputError("missing method at the end of the sentence: expected " +
                           std::string(kMethodChoices));
        }
        // Name the word (or two) that were meant to be a method.
        throw InputError("unknown method " + found() + ": expected " + kMethodChoices);
      }
      std::string word;
      for (size_t k = 0; k < width; ++k) word += t_[pos_ + k].text;
      const Method method = *find_method(word);
      if (std::find(methods.begin(), methods.end(), method) != methods.end()) {
        std::string written;
        for (size_t k = 0; k < width; ++k) written += (k ? " " : "") + t_[pos_ + k].text;
        throw InputError("method " + quote(written) +
                         " named twice: list each of DeepCache, "
                         "T-Gate and ToMe at most once");
      }
      methods.push_back(method);
      pos_ += width;
      // Continue only when a separator is followed by another method; "and
      // precision loss ..." belongs to the goals.
      size_t w = 0;
      if (is(0, "+") && is_method_at(1, &w)) {
        pos_ += 1;
      } else if (is(0, ",") && is(1, "and") && is_method_at(2, &w)) {
        pos_ += 2;
      } else if ((is(0, ",") || is(0, "and")) && is_method_at(1, &w)) {
        pos_ += 1;
      } else {
        break;
      }
    }
    std::sort(methods.begin(), methods.end());
    task.methods = methods;
  }

  // Which goal the words after "with"/"and" start: by their keyword, looked
  // for within the next few words (before the next separator).
  enum class Goal { Speedup, Loss, Latency, Unknown };
  Goal detect_goal() const {
    for (size_t k = 0; k < 5; ++k) {
      const Token* tok = peek(k);
      if (!tok) break;
      if (!tok->quoted &&
          (tok->low == "," || (k > 0 && (tok->low == "and" || tok->low == "with")))) {
        break;
      }
      if (tok->quoted) continue;
      if (tok->low == "speedup" || tok->low == "faster") return Goal::Speedup;
      if (tok->low == "loss") return Goal::Loss;
      if (tok->low == "latency") return Goal::Latency;
    }
    return Goal::Unknown;
  }

  void parse_goals(Task& task) {
    while (!at_end()) {
      const size_t start = pos_;
      accept(",");
      if (accept("within")) {  // "within 1.5s on <GPU>"
        if (at_end()) fail_expected("a latency such as \"1.5s\"");
        parse_latency(task);
        continue;
      }
      const bool comma = pos_ > start;
      // "..., precision loss not exceeding 0.02": a comma alone joins a goal.
      const bool joined =
          accept("with") || accept("and") || (comma && !at_end() && detect_goal() != Goal::Unknown);
      if (!joined || at_end()) {
        pos_ = start;
        if (t_[pos_].low == ",") ++pos_;
        if (at_end()) break;
        // Right after the steps, the methods may still come.
        const std::string methods_hint =
            task.methods.empty() && !task.latency_s
                ? "the sentence may go on only with \", accelerated by <methods>\" (DeepCache, "
                  "T-Gate, ToMe) or, for a basic pipeline, \"with <T>s latency on <GPU name>\""
                : std::string(kGoals);
        throw InputError("unexpected " + found() + " after " + previous() + ": " + methods_hint +
                         "; remove the extra words");
      }
      switch (detect_goal()) {
        case Goal::Speedup: parse_speedup(task); break;
        case Goal::Loss: parse_loss(task); break;
        case Goal::Latency: parse_latency(task); break;
        case Goal::Unknown:
          throw InputError("unexpected " + found() + " after " + previous() + ": " + kGoals);
      }
    }
  }

  // Reads "3.04x" or "3.04 x"; returns the word as written for messages.
  void parse_speedup(Task& task) {
    if (task.speedup) {
      throw InputError("second speedup target " + found() + ": a task has one speedup target");
    }
    accept("a");
    bool of_form = false;
    if (accept("speedup")) {  // "speedup of 3.04x"
      accept("of");
      of_form = true;
    }
    if (at_end()) fail_expected("a speedup such as \"3.04x\"");
    std::string word = t_[pos_].text;
    std::string number = word;
    ++pos_;
    if (!number.empty() && (number.back() == 'x' || number.back() == 'X')) {
      number.pop_back();
    } else if (accept("x")) {
      word += " x";
    }
    const std::string want =
        "expected a number above 1 followed by x, as in \"with 3.04x speedup\"";
    double value = 0;
    if (!parse_double(number, value)) {
      throw InputError("speedup " + quote(word) + " is not a number: " + want);
    }
    if (!(value > 1.0)) {
      throw InputError("speedup " + quote(word) +
                       " must be above 1 (1x is the unaccelerated "
                       "pipeline): " +
                       want);
    }
    task.speedup = value;
    speedup_word_ = word;
    if (!of_form && !accept("speedup")) accept("faster");
  }

  void parse_loss(Task& task) {
    if (loss_given_) {
      throw InputError("second precision loss bound " + found() + ": a task has one loss bound");
    }
    if (!accept("a")) accept("the");
    if (!accept("precision") && !accept("score") && !accept("quality")) {
      if (accept("clip")) accept("score");
    }
    if (!accept("loss")) fail_expected("\"loss\"");
    // "not exceeding", "of at most", "at most", "below", "under", "up to",
    // "within", "<=" all bound it from above.
    if (accept("not")) {
      if (!accept("exceeding") && !accept("above") && !accept("over")) {
        fail_expected("\"exceeding\"");
      }
    } else if (accept("of")) {
      if (accept("at")) {
        if (!accept("most")) fail_expected("\"most\"");
      }
    } else if (accept("at")) {
      if (!accept("most")) fail_expected("\"most\"");
    } else if (accept("up")) {
      if (!accept("to")) fail_expected("\"to\"");
    } else if (!accept("below") && !accept("under") && !accept("within") && !accept("<=")) {
      accept("exceeding");
    }
    if (at_end()) fail_expected("a loss bound such as 0.02");
    const std::string word = t_[pos_].text;
    ++pos_;
    std::string number = word;
    double scale = 1.0;
    if (!number.empty() && number.back() == '%') {
      number.pop_back();
      scale = 0.01;
    }
    const std::string want =
        "expected a relative loss between 0 and 1 (exclusive), as in \"precision loss not "
        "exceeding 0.02\" (or 2%)";
    double value = 0;
    if (!parse_double(number, value)) {
      throw InputError("precision loss " + quote(word) + " is not a number: " + want);
    }
    value *= scale;
    if (!(value > 0.0 && value < 1.0)) {
      throw InputError("precision loss " + quote(word) + " out of range: " + want);
    }
    task.max_score_loss = value;
    loss_given_ = true;
    loss_word_ = word;
  }

  void parse_latency(Task& task) {
    if (task.latency_s) {
      throw InputError("second latency budget " + found() + ": a task has one latency budget");
    }
    accept("a");
    bool of_form = false;
    if (accept("latency")) {  // "a latency budget of 1.5 s on ..."
      accept("budget");
      accept("of");
      of_form = true;
    }
    if (at_end()) fail_expected("a latency such as \"1.5s\"");
    std::string word = t_[pos_].text;
    ++pos_;
    std::string number = lower(word);
    double scale = 1.0;
    auto strip = [&](const std::string& suffix, double s) {
      if (number.size() > suffix.size() &&
          number.compare(number.size() - suffix.size(), suffix.size(), suffix) == 0) {
        number.resize(number.size() - suffix.size());
        scale = s;
        return true;
      }
      return false;
    };
    if (!strip("ms", 0.001) && !strip("seconds", 1.0) && !strip("second", 1.0) &&
        !strip("secs", 1.0) && !strip("sec", 1.0) && !strip("s", 1.0)) {
      if (accept("ms")) {
        scale = 0.001;
        word += " ms";
      } else if (accept("s") || accept("sec") || accept("secs") || accept("second") ||
                 accept("seconds")) {
        word += " " + t_[pos_ - 1].text;
      } else {
        fail_expected("a unit for the latency, \"s\" or \"ms\" (as in \"1.5s latency\")");
      }
    }
    const std::string want = "expected a positive time, as in \"with 1.5s latency on NVIDIA H200\"";
    double value = 0;
    if (!parse_double(number, value)) {
      throw InputError("latency " + quote(word) + " is not a number: " + want);
    }
    value *= scale;
    if (!(value > 0.0)) throw InputError("latency " + quote(word) + " must be positive: " + want);
    task.latency_s = value;
    if (!of_form) {
      accept("latency");
      accept("budget");
    }
    if (!accept("on")) fail_expected("\"on <GPU name>\", the platform the budget is for");
    accept("the");
    task.platform = parse_platform();
  }

  std::string parse_platform() {
    if (at_end()) fail_expected("a GPU name such as \"NVIDIA H200\"");
    std::string name;
    if (t_[pos_].quoted) {
      name = t_[pos_].text;
      ++pos_;
    } else {
      // Unquoted: the words up to the next separator or goal.
      while (!at_end() && !is(0, ",") && !is(0, "and") && !is(0, "with")) {
        name += (name.empty() ? "" : " ") + t_[pos_].text;
        ++pos_;
      }
    }
    // Trim; empty names and characters that keys cannot carry are refused.
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.front())))
      name.erase(0, 1);
    if (name.empty()) fail_expected("a GPU name such as \"NVIDIA H200\"");
    // Keys, JSON and the run record carry the name: text only.
    if (!io::is_utf8(name)) {
      throw InputError("GPU name " + quote(name) + " is not UTF-8 text: write it as CUDA reports it, as in \"NVIDIA H200\"");
    }
    for (unsigned char c : name) {
      if (c < 0x20 || c == 0x7f) {
        throw InputError("GPU name " + quote(name) + " holds a control character: write it as CUDA reports it, as in \"NVIDIA H200\"");
      }
    }
    return name;
  }

  void validate(const Task& task) const {
    if (task.speedup && task.latency_s) {
      throw InputError("both a speedup target " + quote(speedup_word_) +
                       " and a latency budget given: a task has one goal; keep one");
    }
    if (task.methods.empty() && task.speedup) {
      throw InputError("speedup target " + quote(speedup_word_) +
                       " given for a basic pipeline: add the methods that should reach it, "
                       "as in \"accelerated by DeepCache with 3.04x speedup\"");
    }
    if (task.methods.empty() && loss_given_) {
      throw InputError("precision loss " + quote(loss_word_) +
                       " given for a basic pipeline, which has no loss to bound: add "
                       "\"accelerated by <method>\" or remove the bound");
    }
  }
};

std::string join_methods_sentence(const std::vector<Method>& methods) {
  std::string out;
  for (size_t i = 0; i < methods.size(); ++i) {
    if (i > 0) {
      if (methods.size() == 2) {
        out += " and ";
      } else {
        out += (i + 1 == methods.size()) ? ", and " : ", ";
      }
    }
    out += method_name(methods[i]);
  }
  return out;
}

// Platform names go into keys: spaces become '_', and anything that could be
// confused with a separator is percent-encoded, so distinct names give
// distinct keys.
}  // namespace

std::string platform_key(const std::string& platform) {
  std::string out;
  for (unsigned char c : platform) {
    if (std::isalnum(c) || c == '.' || c == '-' || c == '+') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '_';
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Task parse_task(const std::string& sentence) {
  auto tokens = tokenize(sentence);
  if (tokens.empty()) {
    throw InputError(std::string("empty task sentence: expected a sentence such as ") + kExample);
  }
  Parser parser(std::move(tokens));
  return parser.parse();
}

std::string format_task(const Task& task) {
  std::string s = "Generate a " + model_name(task.model) + " pipeline using the " +
                  sampler_sentence_name(task.sampler) + " sampler with " +
                  std::to_string(task.steps) + " steps";
  const std::string loss = "precision loss not exceeding " + format_number(task.max_score_loss);
  std::string latency;
  if (task.latency_s) {
    DIFFSEARCH_ASSERT(task.platform.has_value());
    latency = format_number(*task.latency_s) + "s latency on \"" + *task.platform + "\"";
  }
  if (task.methods.empty()) {
    if (task.latency_s) s += ", with " + latency;
    return s;
  }
  s += ", accelerated by " + join_methods_sentence(task.methods);
  if (task.speedup) {
    s += " with " + format_number(*task.speedup) + "x speedup and " + loss;
  } else if (task.latency_s) {
    s += " with " + latency + " and " + loss;
  } else {
    s += " with " + loss;
  }
  return s;
}

std::string task_key(const Task& task) {
  std::string key = model_slug(task.model) + "/" + sampler_slug(task.sampler) + "/" +
                    std::to_string(task.steps) + "/";
  if (task.methods.empty()) {
    key += "basic";
  } else {
    key += methods_key(task.methods);
  }
  std::string goal;
  if (task.speedup) {
    goal = "x" + format_number(*task.speedup);
  } else if (task.latency_s) {
    goal = "lat" + format_number(*task.latency_s) + "s@" + platform_key(task.platform.value_or(""));
  } else if (!task.methods.empty()) {
    goal = "max";  // the largest speedup within the loss bound
  }
  if (!goal.empty()) key += "/" + goal;
  if (!task.methods.empty()) key += "/loss" + format_number(task.max_score_loss);
  return key;
}

nlohmann::json task_to_json(const Task& task) {
  nlohmann::json j;
  j["key"] = task_key(task);
  j["model"] = model_name(task.model);
  j["sampler"] = sampler_name(task.sampler);
  j["steps"] = task.steps;
  j["methods"] = nlohmann::json::array();
  for (Method m : task.methods) j["methods"].push_back(method_name(m));
  j["speedup"] = task.speedup ? nlohmann::json(*task.speedup) : nlohmann::json(nullptr);
  j["max_score_loss"] = task.max_score_loss;
  j["latency_s"] = task.latency_s ? nlohmann::json(*task.latency_s) : nlohmann::json(nullptr);
  j["platform"] = task.platform ? nlohmann::json(*task.platform) : nlohmann::json(nullptr);
  j["category"] = task.category();
  return j;
}

std::vector<Task> read_tasks_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw InputError("cannot read tasks file \"" + path +
                     "\": check the path (one task sentence a line, # for comments)");
  }
  std::vector<Task> tasks;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    try {
      tasks.push_back(parse_task(line));
    } catch (const InputError& e) {
      throw InputError(path + ":" + std::to_string(number) + ": " + e.what());
    }
  }
  if (tasks.empty()) {
    throw InputError("tasks file \"" + path +
                     "\" holds no task: write one sentence a line, such as " + kExample);
  }
  return tasks;
}

}  // namespace diffsearch::partition
