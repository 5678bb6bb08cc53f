// Parsing templates into a tree of literal text, values and sections, and
// rendering the tree against typed values.
#include "render/template.h"

#include <cctype>

#include "render/escape.h"
#include "io/error.h"

namespace diffsearch::render {

TemplateContext& TemplateContext::set(const std::string& name, Value value) {
  values_[name] = std::move(value);
  return *this;
}

TemplateContext& TemplateContext::text(const std::string& name, std::string value) {
  return set(name, {Kind::text, std::move(value), false, {}});
}

TemplateContext& TemplateContext::code(const std::string& name, std::string value) {
  return set(name, {Kind::code, std::move(value), false, {}});
}

TemplateContext& TemplateContext::flag(const std::string& name, bool value) {
  return set(name, {Kind::flag, {}, value, {}});
}

TemplateContext& TemplateContext::list(const std::string& name, std::vector<TemplateContext> items) {
  return set(name, {Kind::list, {}, false, std::move(items)});
}

const TemplateContext::Value* TemplateContext::find(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

struct Template::Node {
  enum class Kind { literal, value, if_section, each_section };
  Kind kind = Kind::literal;
  std::string text;    // literal text, or the name of a value or section
  std::string filter;  // value only; empty: verbatim
  int line = 0;
  int column = 0;
  std::vector<Node> body;
  std::vector<Node> else_body;
  bool has_else = false;
};

namespace {

using Node = Template::Node;

bool is_name(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (unsigned char c : s) {
    if (!(std::isalnum(c) || c == '_')) return false;
  }
  return true;
}

std::string trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool is_blank(const std::string& s, std::size_t from, std::size_t to) {
  for (std::size_t i = from; i < to; ++i) {
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
  }
  return true;
}

class Parser {
 public:
  Parser(const std::string& name, const std::string& source) : name_(name), src_(source) {}

  std::vector<Node> parse() {
    struct Open {
      Node node;
      bool in_else = false;
    };
    std::vector<Node> root;
    std::vector<Open> stack;
    auto current = [&]() -> std::vector<Node>& {
      if (stack.empty()) return root;
      return stack.back().in_else ? stack.back().node.else_body : stack.back().node.body;
    };
    auto add_literal = [&](std::size_t from, std::size_t to) {
      if (to <= from) return;
      Node node;
      node.text = src_.substr(from, to - from);
      current().push_back(std::move(node));
    };

    std::size_t pos = 0;  // start of the literal text not yet added
    while (true) {
      const std::size_t open = src_.find("{{", pos);
      if (open == std::string::npos) {
        add_literal(pos, src_.size());
        break;
      }
      const std::size_t close = src_.find("}}", open + 2);
      if (close == std::string::npos) fail(open, "\"{{\" without its \"}}\"");
      const std::string tag = trim(src_.substr(open + 2, close - open - 2));
      const std::size_t after = close + 2;
      const bool section = !tag.empty() && (tag[0] == '#' || tag[0] == '/' || tag[0] == '!' || tag == "else");

      // A section tag alone on its line takes the whole line with it.
      std::size_t literal_end = open, next = after;
      if (section) {
        const std::size_t line_start = src_.rfind('\n', open) == std::string::npos ? 0 : src_.rfind('\n', open) + 1;
        std::size_t line_end = src_.find('\n', after);
        if (line_end == std::string::npos) line_end = src_.size();
        if (line_start >= pos && is_blank(src_, line_start, open) && is_blank(src_, after, line_end)) {
          literal_end = line_start;
          next = line_end == src_.size() ? line_end : line_end + 1;
        }
      }
      add_literal(pos, literal_end);
      pos = next;

      if (tag.empty()) fail(open, "empty tag \"{{}}\"");
      if (tag[0] == '!') continue;
      if (tag[0] == '#') {
        const std::size_t space = tag.find(' ');
        const std::string kind = tag.substr(1, space == std::string::npos ? std::string::npos : space - 1);
        const std::string name = space == std::string::npos ? "" : trim(tag.substr(space + 1));
        if (kind != "if" && kind != "each") fail(open, "unknown section \"{{" + tag + "}}\" (expected #if or #each)");
        if (!is_name(name)) fail(open, "\"{{" + tag + "}}\" needs a name, as in {{#" + kind + " name}}");
        Node node;
        node.kind = kind == "if" ? Node::Kind::if_section : Node::Kind::each_section;
        node.text = name;
        locate(open, node);
        stack.push_back({std::move(node)});
      } else if (tag[0] == '/') {
        const std::string kind = tag.substr(1);
        if (kind != "if" && kind != "each") fail(open, "unknown closing tag \"{{" + tag + "}}\"");
        if (stack.empty()) fail(open, "\"{{" + tag + "}}\" closes no open section");
        const Node& top = stack.back().node;
        const std::string top_kind = top.kind == Node::Kind::if_section ? "if" : "each";
        if (top_kind != kind) {
          fail(open, "\"{{" + tag + "}}\" closes {{#" + top_kind + " " + top.text + "}} opened at line " +
                         std::to_string(top.line) + "; close that with {{/" + top_kind + "}} first");
        }
        Node done = std::move(stack.back().node);
        stack.pop_back();
        current().push_back(std::move(done));
      } else if (tag == "else") {
        if (stack.empty() || stack.back().node.kind != Node::Kind::if_section) {
          fail(open, "\"{{else}}\" outside an {{#if}} section");
        }
        if (stack.back().in_else) fail(open, "second \"{{else}}\" in one {{#if}} section");
        stack.back().in_else = true;
        stack.back().node.has_else = true;
      } else {
        Node node;
        node.kind = Node::Kind::value;
        const std::size_t bar = tag.find('|');
        node.text = trim(tag.substr(0, bar));
        if (bar != std::string::npos) node.filter = trim(tag.substr(bar + 1));
        if (!is_name(node.text)) fail(open, "\"{{" + tag + "}}\" is not a name (letters, digits and _)");
        if (bar != std::string::npos && node.filter != "py" && node.filter != "comment" && node.filter != "md" &&
            node.filter != "url" && node.filter != "html" && node.filter != "sh") {
          fail(open, "unknown filter \"" + node.filter + "\" (expected py, comment, md, url, html or sh)");
        }
        locate(open, node);
        current().push_back(std::move(node));
      }
    }
    if (!stack.empty()) {
      const Node& top = stack.back().node;
      throw Error("template " + name_ + ":" + std::to_string(top.line) + ":" + std::to_string(top.column) + ": {{#" +
                  (top.kind == Node::Kind::if_section ? "if " : "each ") + top.text + "}} is never closed");
    }
    return root;
  }

 private:
  void locate(std::size_t offset, Node& node) const {
    node.line = 1;
    node.column = 1;
    for (std::size_t i = 0; i < offset; ++i) {
      if (src_[i] == '\n') {
        ++node.line;
        node.column = 1;
      } else {
        ++node.column;
      }
    }
  }

  [[noreturn]] void fail(std::size_t offset, const std::string& what) const {
    Node at;
    locate(offset, at);
    throw Error("template " + name_ + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) + ": " + what);
  }

  const std::string& name_;
  const std::string& src_;
};

struct Scope {
  const TemplateContext* context;
  const Scope* parent;
};

class Renderer {
 public:
  explicit Renderer(const std::string& name) : name_(name) {}

  void render(const std::vector<Node>& nodes, const Scope& scope, std::string& out) const {
    for (const auto& node : nodes) {
      switch (node.kind) {
        case Node::Kind::literal:
          out += node.text;
          break;
        case Node::Kind::value:
          out += value_text(node, lookup(node, scope));
          break;
        case Node::Kind::if_section: {
          const auto& v = lookup(node, scope);
          bool on;
          if (v.kind == TemplateContext::Kind::flag) on = v.on;
          else if (v.kind == TemplateContext::Kind::list) on = !v.items.empty();
          else fail(node, "{{#if " + node.text + "}} needs a flag or a list, and \"" + node.text + "\" is text");
          render(on ? node.body : node.else_body, scope, out);
          break;
        }
        case Node::Kind::each_section: {
          const auto& v = lookup(node, scope);
          if (v.kind != TemplateContext::Kind::list) {
            fail(node, "{{#each " + node.text + "}} needs a list, and \"" + node.text + "\" is not one");
          }
          for (const auto& item : v.items) render(node.body, Scope{&item, &scope}, out);
          break;
        }
      }
    }
  }

 private:
  const TemplateContext::Value& lookup(const Node& node, const Scope& scope) const {
    for (const Scope* s = &scope; s; s = s->parent) {
      if (const auto* v = s->context->find(node.text)) return *v;
    }
    fail(node, "no value named \"" + node.text + "\"");
  }

  std::string value_text(const Node& node, const TemplateContext::Value& v) const {
    if (v.kind == TemplateContext::Kind::flag || v.kind == TemplateContext::Kind::list) {
      fail(node, "\"" + node.text + "\" is a " + (v.kind == TemplateContext::Kind::flag ? "flag" : "list") +
                     ", not text: use it in {{#if}} or {{#each}}");
    }
    if (node.filter.empty()) {
      if (v.kind == TemplateContext::Kind::text) {
        fail(node, "\"" + node.text + "\" is outside text and needs a filter ({{" + node.text + "|py}}, |comment, "
                   "|md, |url, |html or |sh)");
      }
      return v.str;
    }
    if (node.filter == "py") return py_str(v.str);
    if (node.filter == "comment") return comment_text(v.str);
    if (node.filter == "md") return md_cell(v.str);
    if (node.filter == "html") return html_text(v.str);
    if (node.filter == "sh") return sh_word(v.str);
    return url_path(v.str);
  }

  [[noreturn]] void fail(const Node& node, const std::string& what) const {
    throw Error("template " + name_ + ":" + std::to_string(node.line) + ":" + std::to_string(node.column) + ": " +
                what);
  }

  const std::string& name_;
};

}  // namespace

Template::Template(std::string name, const std::string& source)
    : name_(std::move(name)), nodes_(std::make_unique<std::vector<Node>>(Parser(name_, source).parse())) {}

Template::~Template() = default;
Template::Template(Template&&) noexcept = default;

std::string Template::render(const TemplateContext& context) const {
  std::string out;
  Renderer(name_).render(*nodes_, Scope{&context, nullptr}, out);
  return out;
}

}  // namespace diffsearch::render
