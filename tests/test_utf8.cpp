#include <catch2/catch.hpp>

#include <string>

#include "lmdecode/text/detail/utf8.hpp"

using lmdecode::detail::complete_utf8_prefix;
using lmdecode::detail::utf8_char_length;

TEST_CASE("one UTF-8 character length for lead, stray and invalid bytes", "[utf8]") {
  CHECK(utf8_char_length('a') == 1);
  CHECK(utf8_char_length(0xC3) == 2);  // é
  CHECK(utf8_char_length(0xE2) == 3);  // €
  CHECK(utf8_char_length(0xF0) == 4);  // 😀
  CHECK(utf8_char_length(0xF4) == 4);
  // No character starts with these: a scan moves on by one byte.
  for (int stray : {0x80, 0xBF, 0xC0, 0xC1, 0xF5, 0xF8, 0xFF}) CHECK(utf8_char_length(static_cast<unsigned char>(stray)) == 1);
}

TEST_CASE("a streamed prefix stops before a character more bytes could complete, never before a stray byte", "[utf8]") {
  const std::string euro = "\xE2\x82\xAC", emoji = "\xF0\x9F\x98\x80";
  CHECK(complete_utf8_prefix("ab" + euro) == 5);
  CHECK(complete_utf8_prefix("ab" + euro.substr(0, 2)) == 2);    // truncated: wait for the last byte
  CHECK(complete_utf8_prefix("ab" + emoji.substr(0, 3)) == 2);
  CHECK(complete_utf8_prefix("ab" + emoji.substr(0, 1)) == 2);
  CHECK(complete_utf8_prefix("ab\x80") == 3);                    // a stray continuation byte cannot be completed
  CHECK(complete_utf8_prefix("ab\xFF") == 3);                    // nor a byte that starts nothing
  CHECK(complete_utf8_prefix("ab\xC0") == 3);                    // an overlong lead neither
  CHECK(complete_utf8_prefix(std::string("\x80\x80\x80\x80", 4)) == 4);
  CHECK(complete_utf8_prefix("") == 0);
}

TEST_CASE("invalid UTF-8 is an error naming the offset of its first bad byte", "[utf8]") {
  using lmdecode::detail::check_utf8;
  REQUIRE_NOTHROW(check_utf8("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"));
  REQUIRE_THROWS_WITH(check_utf8("abc\x80"), Catch::Contains("not valid UTF-8 at byte 3 (0x80)"));
  REQUIRE_THROWS_WITH(check_utf8("ab\xE2\x82"), Catch::Contains("at byte 2 (0xe2)"));      // truncated
  REQUIRE_THROWS_WITH(check_utf8("\xC0\xAF"), Catch::Contains("at byte 0 (0xc0)"));         // overlong
  REQUIRE_THROWS_WITH(check_utf8("x\xED\xA0\x80"), Catch::Contains("at byte 1 (0xed)"));    // a surrogate
}
