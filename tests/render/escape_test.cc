// The escapers: exact spellings for the cases that matter, and Python itself
// reading every literal back to the bytes that went in.
#include "render/escape.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/support/test_support.h"

namespace diffsearch::render {
namespace {

namespace fs = std::filesystem;

bool is_one_ascii_line(const std::string& s) {
  for (unsigned char c : s) {
    if (c >= 0x80 || c < 0x20 || c == 0x7F) return false;
  }
  return true;
}

// Inputs that have broken generated code elsewhere: quotes of every kind,
// backslashes, line breaks Python and editors know, encodings, template
// syntax, NUL and malformed UTF-8.
std::vector<std::string> hostile_texts() {
  return {
      "it's",
      "'''",
      "\"\"\"",
      "\\",
      "\\'",
      "end\\",
      "a\nb\rc\r\nd\te",
      "'); import os; os.system('echo pwned'); x = ('",
      "\n# -*- coding: utf-7 -*-\n+AAo-print(1)",
      "\\N{BULLET} \\x41 \\u0041",
      "caf\xc3\xa9 \xe2\x80\xa8 \xc2\x85 \xef\xbb\xbf \xf0\x9f\x98\x80",
      "\xff\xfe \xc0\xaf \xed\xa0\x80 \xe2\x82",
      std::string("nul\0byte", 8),
      "\x01\x0b\x0c\x1b\x7f",
      "{{prompt}} {{#if x}}",
      "",
  };
}

TEST(Escape, PythonStringLiterals) {
  EXPECT_EQ(py_str("plain text"), "'plain text'");
  EXPECT_EQ(py_str("it's"), "'it\\'s'");
  EXPECT_EQ(py_str("\"\"\""), "'\"\"\"'");
  EXPECT_EQ(py_str("'''"), "'\\'\\'\\''");
  EXPECT_EQ(py_str("a\\b"), "'a\\\\b'");
  EXPECT_EQ(py_str("a\nb\r\t"), "'a\\nb\\r\\t'");
  EXPECT_EQ(py_str(std::string("\0\x7f", 2)), "'\\x00\\x7f'");
  EXPECT_EQ(py_str("caf\xc3\xa9"), "'caf\\xe9'");
  EXPECT_EQ(py_str("\xe2\x80\xa8"), "'\\u2028'");
  EXPECT_EQ(py_str("\xf0\x9f\x98\x80"), "'\\U0001f600'");
  // Malformed UTF-8: each byte as Python's surrogateescape spells it.
  EXPECT_EQ(py_str("\xff"), "'\\udcff'");
  EXPECT_EQ(py_str("\xc0\xaf"), "'\\udcc0\\udcaf'");      // overlong '/'
  EXPECT_EQ(py_str("\xed\xa0\x80"), "'\\udced\\udca0\\udc80'");  // a UTF-16 surrogate
  EXPECT_EQ(py_str("\xe2\x82"), "'\\udce2\\udc82'");      // cut short
  for (const auto& s : hostile_texts()) EXPECT_TRUE(is_one_ascii_line(py_str(s))) << py_str(s);
}

TEST(Escape, CommentsAndMarkdownStayOnOneLine) {
  EXPECT_EQ(comment_text("it's \"fine\""), "it's \"fine\"");
  EXPECT_EQ(comment_text("a\nimport os"), "a\\nimport os");
  EXPECT_EQ(comment_text("back\\slash"), "back\\\\slash");
  EXPECT_EQ(md_cell("a|b *c* [d](e) <f> `g` _h_"), "a\\|b \\*c\\* \\[d\\](e) \\<f\\> \\`g\\` \\_h\\_");
  EXPECT_EQ(md_cell("x\ny"), "x\\\\ny");
  for (const auto& s : hostile_texts()) {
    EXPECT_TRUE(is_one_ascii_line(comment_text(s))) << comment_text(s);
    EXPECT_TRUE(is_one_ascii_line(md_cell(s))) << md_cell(s);
  }
}

TEST(Escape, HtmlTextIsMarkupFreeAsciiOnOneLine) {
  EXPECT_EQ(html_text("a<b>&\"c\" 'd'"), "a&lt;b&gt;&amp;&quot;c&quot; &#39;d&#39;");
  EXPECT_EQ(html_text("</script><script>alert(1)</script>"),
            "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;");
  EXPECT_EQ(html_text("caf\xc3\xa9 \xf0\x9f\x98\x80"), "caf&#xE9; &#x1F600;");
  EXPECT_EQ(html_text("a\nb\tc"), "a&#10;b&#9;c");
  EXPECT_EQ(html_text(std::string("\0\x1b\x7f", 3)), "&#xFFFD;&#xFFFD;&#xFFFD;");
  EXPECT_EQ(html_text("\xff\xc0\xaf"), "&#xFFFD;&#xFFFD;&#xFFFD;");
  for (const auto& s : hostile_texts()) {
    const std::string h = html_text(s);
    EXPECT_TRUE(is_one_ascii_line(h)) << h;
    EXPECT_EQ(h.find_first_of("<>\"'"), std::string::npos) << h;
    // Every '&' starts an entity, so none can be completed by what follows.
    for (std::size_t i = h.find('&'); i != std::string::npos; i = h.find('&', i + 1)) {
      const std::size_t semi = h.find(';', i);
      ASSERT_NE(semi, std::string::npos) << h;
      EXPECT_EQ(h.substr(i + 1, semi - i - 1).find_first_of(" &"), std::string::npos) << h;
    }
  }
}

TEST(Escape, UrlsAndShellWords) {
  EXPECT_EQ(url_path("sd15_ddim_50_basic_lat1.5s@NVIDIA_H200.py"), "sd15_ddim_50_basic_lat1.5s%40NVIDIA_H200.py");
  EXPECT_EQ(url_path("a b%/)"), "a%20b%25%2F%29");
  EXPECT_EQ(sh_word("tgate:gate_step=10,warm_up=2"), "tgate:gate_step=10,warm_up=2");
  EXPECT_EQ(sh_word("a photo"), "'a photo'");
  EXPECT_EQ(sh_word("it's"), "'it'\\''s'");
  EXPECT_EQ(sh_word(""), "''");
  EXPECT_EQ(sh_word("$(rm -rf /)"), "'$(rm -rf /)'");
}

TEST(Escape, PythonNumbersAndValues) {
  EXPECT_EQ(py_float(2.0), "2.0");
  EXPECT_EQ(py_float(0.3), "0.3");
  EXPECT_EQ(py_float(1e-05), "1e-05");
  EXPECT_EQ(py_float(-0.5), "-0.5");
  EXPECT_EQ(py_float(std::nan("")), "float('nan')");
  EXPECT_EQ(py_float(INFINITY), "float('inf')");
  EXPECT_EQ(py_float(-INFINITY), "-float('inf')");
  EXPECT_EQ(py_int(-3), "-3");
  EXPECT_EQ(py_bool(true), "True");
  EXPECT_EQ(py_bool(false), "False");
  const nlohmann::json setting = {{"ratio", 0.5}, {"use_rand", false}, {"sx", 2}, {"name", "it's"}, {"none", nullptr}};
  EXPECT_EQ(py_value(setting), "{'name': 'it\\'s', 'none': None, 'ratio': 0.5, 'sx': 2, 'use_rand': False}");
}

// Python evaluates every literal back to exactly the bytes that went in (raw
// bytes through surrogateescape), and every comment stays one comment.
TEST(Escape, PythonReadsTheLiteralsBack) {
  const fs::path dir = diffsearch::testing::fresh_test_dir("escape_test");
  const auto texts = hostile_texts();
  {
    std::ofstream py(dir / "check.py", std::ios::binary);
    py << "import sys\nexpected = sys.argv[1].split(',')\nvalues = [\n";
    for (const auto& s : texts) py << "    " << py_str(s) << ",  # " << comment_text(s) << "\n";
    py << "]\nlines = open(__file__, 'rb').read().split(b'\\n')\n"
          "assert len(values) == len(expected), (len(values), len(expected))\n"
          "for v, e in zip(values, expected):\n"
          "    assert v.encode('utf-8', 'surrogateescape').hex() == e, (v, e)\n"
          "assert sum(1 for l in lines if l.lstrip().startswith(b\"'\") or l.lstrip().startswith(b'\"')) == len(values)\n"
          "print('ok', len(values))\n";
  }
  std::string expected;
  for (const auto& s : texts) {
    char buf[3];
    std::string hex;
    for (unsigned char c : s) {
      std::snprintf(buf, sizeof buf, "%02x", c);
      hex += buf;
    }
    expected += (expected.empty() ? "" : ",") + hex;
  }
  const auto python =
      diffsearch::testing::run_command("/usr/bin/python3 " + (dir / "check.py").string() + " '" + expected + "' 2>&1");
  EXPECT_EQ(python.code, 0) << python.out;
  EXPECT_EQ(python.out, "ok " + std::to_string(texts.size()) + "\n");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace diffsearch::render
