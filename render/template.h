// The one renderer of generated files: a small template language whose
// values are typed, so untrusted text can only reach the output through an
// escaping filter.
//
//   {{name}}              a code value, verbatim
//   {{name|FILTER}}       any text or code value through a filter:
//                         py (Python str literal), comment (one-line comment
//                         text), md (Markdown table cell), url (link target),
//                         html (HTML text or quoted attribute value),
//                         sh (one POSIX shell word, quoted where needed)
//   {{#if name}} ... {{else}} ... {{/if}}   a flag, or a list (non-empty)
//   {{#each name}} ... {{/each}}            a list: the body once per item;
//                                           names look in the item first
//   {{! note }}           a note for template readers, dropped
//
// A line holding nothing but a section tag ({{#...}}, {{else}}, {{/...}},
// {{!...}}) and blanks disappears whole. There is no way to write "{{"
// literally: templates that need it are the wrong tool.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace diffsearch::render {

class TemplateContext {
 public:
  // Text from outside (tasks, prompts, paths, device names): only through a filter.
  TemplateContext& text(const std::string& name, std::string value);
  // Text the generator built itself from fixed words and the literal
  // functions of render/escape.h: may be inserted verbatim.
  TemplateContext& code(const std::string& name, std::string value);
  TemplateContext& flag(const std::string& name, bool value);
  TemplateContext& list(const std::string& name, std::vector<TemplateContext> items);

  enum class Kind { text, code, flag, list };
  struct Value {
    Kind kind;
    std::string str;
    bool on = false;
    std::vector<TemplateContext> items;
  };
  // nullptr when the name is not set here.
  const Value* find(const std::string& name) const;

 private:
  TemplateContext& set(const std::string& name, Value value);
  std::map<std::string, Value> values_;
};

class Template {
 public:
  // Parses `source`; diffsearch::Error naming `name`, the line and the column
  // for an unterminated tag, an unknown filter or tag, a section closed by
  // the wrong tag or never closed.
  Template(std::string name, const std::string& source);
  ~Template();
  Template(Template&&) noexcept;

  // diffsearch::Error naming the template, line and column for a name the
  // context lacks, a text value without a filter, a flag where text belongs,
  // or a section over a value of the wrong kind.
  std::string render(const TemplateContext& context) const;

  struct Node;

 private:
  std::string name_;
  std::unique_ptr<std::vector<Node>> nodes_;
};

}  // namespace diffsearch::render
