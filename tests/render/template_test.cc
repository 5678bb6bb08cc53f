// The template renderer: values, filters, sections, whole-line section tags,
// every malformed template and every misused value refused with its place;
// and each consumer's embedded templates are the files of its templates/.
#include "render/template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "codegen/codegen.h"
#include "io/error.h"
#include "report/render.h"
#include "slurm/batch_script.h"

namespace diffsearch::render {
namespace {

std::string render(const std::string& source, const TemplateContext& c) { return Template("t.tmpl", source).render(c); }

// The message of the Error that parsing or rendering throws ("" if none).
std::string error_of(const std::string& source, const TemplateContext& c = {}) {
  try {
    render(source, c);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Template, ValuesAndFilters) {
  TemplateContext c;
  c.code("n", "42").text("t", "it's\n<b>|").code("k", "a b");
  EXPECT_EQ(render("x = {{n}}\n", c), "x = 42\n");
  EXPECT_EQ(render("{{ n }}", c), "42");
  EXPECT_EQ(render("{{t|py}}", c), "'it\\'s\\n<b>|'");
  EXPECT_EQ(render("# {{t|comment}}", c), "# it's\\n<b>|");
  EXPECT_EQ(render("{{t|md}}", c), "it's\\\\n\\<b\\>\\|");
  EXPECT_EQ(render("{{k|url}}", c), "a%20b");
  EXPECT_EQ(render("<td title=\"{{t|html}}\">", c), "<td title=\"it&#39;s&#10;&lt;b&gt;|\">");
  EXPECT_EQ(render("{{k|py}}", c), "'a b'");
  // One shell word whatever the text: plain words stay, others are quoted.
  EXPECT_EQ(render("x={{k|sh}}", c), "x='a b'");
  c.text("plain", "results/run-1.h5");
  EXPECT_EQ(render("x={{plain|sh}}", c), "x=results/run-1.h5");
  EXPECT_EQ(render("{{t|sh}}", c), "'it'\\''s\n<b>|'");
  EXPECT_EQ(render("no tags } here }}", c), "no tags } here }}");
  // Values are not templates: their braces come out as they are.
  c.text("braces", "{{n}}");
  EXPECT_EQ(render("{{braces|comment}}", c), "{{n}}");
}

TEST(Template, Sections) {
  TemplateContext c;
  c.flag("yes", true).flag("no", false).list("empty", {});
  std::vector<TemplateContext> items(2);
  items[0].code("name", "a");
  items[1].code("name", "b").code("outer", "shadowed");
  c.list("items", items).code("outer", "O");
  EXPECT_EQ(render("{{#if yes}}Y{{else}}N{{/if}}{{#if no}}Y{{else}}N{{/if}}", c), "YN");
  EXPECT_EQ(render("[{{#if no}}x{{/if}}]", c), "[]");
  EXPECT_EQ(render("{{#if items}}some{{/if}}{{#if empty}}none{{/if}}", c), "some");
  EXPECT_EQ(render("{{#each items}}{{name}}{{outer}},{{/each}}", c), "aO,bshadowed,");
  EXPECT_EQ(render("{{#each empty}}x{{/each}}", c), "");
  EXPECT_EQ(render("a{{! a note }}b", c), "ab");
}

TEST(Template, SectionTagsAloneOnTheirLineTakeTheLine) {
  TemplateContext c;
  c.flag("yes", true).flag("no", false);
  EXPECT_EQ(render("a\n{{#if yes}}\nb\n{{/if}}\nc\n", c), "a\nb\nc\n");
  EXPECT_EQ(render("a\n  {{#if no}}  \nb\n  {{else}}\nd\n  {{/if}}\nc", c), "a\nd\nc");
  EXPECT_EQ(render("a\n{{! note }}\nc\n", c), "a\nc\n");
  // Not alone: the line and its blanks stay.
  EXPECT_EQ(render("a {{#if yes}}b{{/if}}\n", c), "a b\n");
  EXPECT_EQ(render("{{#if yes}}x{{/if}} {{#if yes}}\ny\n{{/if}}\n", c), "x \ny\n");
  // Value tags never take their line.
  c.code("v", "");
  EXPECT_EQ(render("a\n{{v}}\nb", c), "a\n\nb");
}

TEST(Template, MalformedTemplatesAreRefusedWithTheirPlace) {
  EXPECT_NE(error_of("ok\n  {{#if x}}\n").find("t.tmpl:2:3: {{#if x}} is never closed"), std::string::npos)
      << error_of("ok\n  {{#if x}}\n");
  EXPECT_NE(error_of("{{#if x}}{{/each}}").find("t.tmpl:1:10: \"{{/each}}\" closes {{#if x}} opened at line 1"),
            std::string::npos);
  EXPECT_NE(error_of("a\n{{/if}}").find("t.tmpl:2:1: \"{{/if}}\" closes no open section"), std::string::npos);
  EXPECT_NE(error_of("{{else}}").find("outside an {{#if}}"), std::string::npos);
  EXPECT_NE(error_of("{{#if x}}{{else}}{{else}}{{/if}}").find("second \"{{else}}\""), std::string::npos);
  EXPECT_NE(error_of("x {{ name").find("t.tmpl:1:3: \"{{\" without its \"}}\""), std::string::npos);
  EXPECT_NE(error_of("{{}}").find("empty tag"), std::string::npos);
  EXPECT_NE(error_of("{{#while x}}{{/while}}").find("unknown section"), std::string::npos);
  EXPECT_NE(error_of("{{#if}}{{/if}}").find("needs a name"), std::string::npos);
  EXPECT_NE(error_of("{{a-b}}").find("is not a name"), std::string::npos);
  EXPECT_NE(error_of("{{x|shell}}").find("unknown filter \"shell\""), std::string::npos);
  // Found even in sections that would not render.
  TemplateContext c;
  c.flag("no", false);
  EXPECT_NE(error_of("{{#if no}}{{x|bogus}}{{/if}}", c).find("unknown filter"), std::string::npos);
}

TEST(Template, MisusedValuesAreRefusedWithTheirPlace) {
  TemplateContext c;
  c.text("t", "text").code("k", "code").flag("f", true).list("l", {});
  EXPECT_NE(error_of("a\n  {{missing}}", c).find("t.tmpl:2:3: no value named \"missing\""), std::string::npos);
  EXPECT_NE(error_of("{{#if missing}}{{/if}}", c).find("no value named \"missing\""), std::string::npos);
  EXPECT_NE(error_of("{{t}}", c).find("\"t\" is outside text and needs a filter"), std::string::npos);
  EXPECT_NE(error_of("{{f}}", c).find("\"f\" is a flag, not text"), std::string::npos);
  EXPECT_NE(error_of("{{l|py}}", c).find("\"l\" is a list, not text"), std::string::npos);
  EXPECT_NE(error_of("{{#if t}}{{/if}}", c).find("needs a flag or a list"), std::string::npos);
  EXPECT_NE(error_of("{{#each f}}{{/each}}", c).find("needs a list"), std::string::npos);
  // A name unknown inside a list item and outside it.
  std::vector<TemplateContext> items(1);
  c.list("items", items);
  EXPECT_NE(error_of("{{#each items}}{{nope}}{{/each}}", c).find("no value named \"nope\""), std::string::npos);
}

// What the executable renders is what each consumer's template folder holds
// (render/embed.cmake embeds them), and every embedded template parses.
TEST(Template, EmbeddedTemplatesAreTheSourceFiles) {
  struct Consumer {
    const char* folder;
    const TemplateFiles& (*templates)();
    const std::string& (*find)(const std::string&);
  };
  const Consumer consumers[] = {
      {"codegen/templates", codegen::embedded_templates, codegen::embedded_template},
      {"slurm/templates", slurm::embedded_templates, slurm::embedded_template},
      {"report/templates", report::embedded_templates, report::embedded_template},
  };
  const std::filesystem::path source(DIFFSEARCH_SOURCE_DIR);
  for (const auto& consumer : consumers) {
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(source / consumer.folder)) {
      if (entry.path().extension() != ".tmpl") continue;
      ++files;
      std::ifstream in(entry.path(), std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      const std::string name = entry.path().filename().string();
      EXPECT_EQ(consumer.find(name), text.str()) << consumer.folder << "/" << name;
      EXPECT_NO_THROW(Template(name, consumer.find(name))) << consumer.folder << "/" << name;
    }
    EXPECT_GT(files, 0u) << consumer.folder;
    EXPECT_EQ(consumer.templates().size(), files) << consumer.folder;
    try {
      consumer.find("nope.tmpl");
      ADD_FAILURE() << consumer.folder << ": an unknown template was found";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(consumer.folder), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(codegen::embedded_template("script.py.tmpl"));
  EXPECT_NO_THROW(slurm::embedded_template("slurm_job.sh.tmpl"));
  EXPECT_NO_THROW(report::embedded_template("report.html.tmpl"));
}

}  // namespace
}  // namespace diffsearch::render
