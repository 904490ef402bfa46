// Text from files made safe to show: control characters, C1 controls, bidi overrides and invalid
// UTF-8 become visible escapes, so a token cannot retitle a terminal or reorder a figure's label.
#pragma once
#include <string>
#include <string_view>

namespace attnviz {

// Returns `text` with every byte or code point that a terminal or a text shaper would act on
// instead of showing shown as an escape:
//   C0 controls and DEL      -> \n \r \t \e or \xNN     ("\x1b]0;title\x07" -> "\e]0;title\x07")
//   C1 controls U+0080-009F  -> \u{85}
//   bidi controls (U+061C, U+200E/F, U+202A-202E, U+2066-2069) -> \u{202E}
//   bytes that are not UTF-8 -> \xNN
// A backslash stays as it is. Everything else (any script, emoji, CJK) passes through unchanged.
std::string printable_for_terminal(std::string_view text);

// True if printable_for_terminal(text) would change it.
bool has_unprintable(std::string_view text);

}  // namespace attnviz
