#include <catch2/catch.hpp>

#include "cli/json_writer.hpp"

using postern::cli::json_writer;

TEST_CASE("the JSON writer places commas and keys, and quotes strings") {
  json_writer json;
  json.begin_object().boolean("ok", false).number("count", -3).begin_array("files");
  json.begin_object().string("file", "a \"b\"\n").end_object();
  json.begin_object().end_object().end_array();
  json.begin_array("empty").end_array().string("last", "x").end_object();
  CHECK(json.text() ==
        R"({"ok":false,"count":-3,"files":[{"file":"a \"b\"\n"},{}],"empty":[],"last":"x"})");
}

TEST_CASE("a top-level array holds values without keys") {
  json_writer json;
  json.begin_array().number("", 1).string("", "two").begin_object().end_object().end_array();
  CHECK(json.text() == R"([1,"two",{}])");
}
