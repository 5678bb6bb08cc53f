// The one UTF-8 check that prompts, task fields and results files share.
#include "io/utf8.h"

#include <gtest/gtest.h>

#include <string>

using diffsearch::io::invalid_utf8_at;
using diffsearch::io::is_utf8;

TEST(Utf8, AcceptsWellFormedTextOfEveryLength) {
  EXPECT_TRUE(is_utf8(""));
  EXPECT_TRUE(is_utf8("a photo of a cat"));
  EXPECT_TRUE(is_utf8("naïve — 東京 🐱"));          // two-, three- and four-byte sequences
  EXPECT_TRUE(is_utf8("\xF4\x8F\xBF\xBF"));          // U+10FFFF, the last code point
}

TEST(Utf8, NamesTheFirstBadByte) {
  EXPECT_EQ(invalid_utf8_at(std::string("abc\xCE", 4)), 3u);     // truncated at the end
  EXPECT_EQ(invalid_utf8_at("ab\x80" "cd"), 2u);                  // stray continuation byte
  EXPECT_EQ(invalid_utf8_at("\xC0\xAF"), 0u);                     // overlong '/'
  EXPECT_EQ(invalid_utf8_at("ok\xED\xA0\x80"), 2u);               // a UTF-16 surrogate
  EXPECT_EQ(invalid_utf8_at("\xF4\x90\x80\x80"), 0u);             // past U+10FFFF
  EXPECT_EQ(invalid_utf8_at("\xE2\x82" "x"), 0u);                 // continuation missing
  EXPECT_EQ(invalid_utf8_at("\xFF"), 0u);                         // never a lead byte
}
