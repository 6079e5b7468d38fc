#pragma once
/// Configuration diagnostics: every problem found in a file, each with its location.

#include <string>
#include <vector>

namespace postern::conf {

/// One problem in a configuration file, printed as `file:line:col: key.path: message`.
struct diagnostic {
  std::string file;
  int line = 0;  ///< 1-based; 0 when the problem has no place in the file
  int column = 0;
  std::string key_path;
  std::string message;

  [[nodiscard]] std::string to_string() const;
};

/// Collects every diagnostic of one load, so the user sees them all at once: errors, which
/// make the load fail, and warnings (insecure or soon-to-fail settings), which do not.
class diagnostics {
 public:
  void add(diagnostic d) { items_.push_back(std::move(d)); }
  void warn(diagnostic d) { warnings_.push_back(std::move(d)); }
  [[nodiscard]] bool empty() const { return items_.empty(); }
  [[nodiscard]] const std::vector<diagnostic>& items() const { return items_; }
  [[nodiscard]] const std::vector<diagnostic>& warnings() const { return warnings_; }
  /// All errors, one per line.
  [[nodiscard]] std::string to_string() const;
  /// All warnings, one per line, each marked "warning:".
  [[nodiscard]] std::string warnings_text() const;

 private:
  std::vector<diagnostic> items_;
  std::vector<diagnostic> warnings_;
};

/// The closest candidate to `word` by edit distance, or "" when none is close enough.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace postern::conf
