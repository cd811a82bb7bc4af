// parse_json_unique (events/json.hpp): JSON text to a tree, refusing an
// object that names a key twice. nlohmann's own DOM parser keeps one of the
// two values silently, so `{"kind":"a","kind":"b"}` would mean whichever it
// kept; here the tree is built by a SAX handler whose object insert reports
// the clash instead.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "events/json.hpp"

namespace jobsmith {

namespace {

using json = nlohmann::json;

// Keys quoted in messages are cut to this many bytes.
constexpr std::size_t max_key_in_message = 64;
// Paths in messages are cut after about this many bytes.
constexpr std::size_t max_path_in_message = 200;

std::string quoted_key(const std::string& key) {
  if (key.size() <= max_key_in_message) return "'" + key + "'";
  return "'" + key.substr(0, max_key_in_message) + "...'";
}

// Builds the tree the way nlohmann::json::parse does (same types, same
// values), with one difference: a key already present in the object being
// built stops the parse. Iterative like nlohmann's parser (no recursion per
// nesting level); the containers being built are kept as pointers, which
// stay valid because a container only grows while it is the innermost one.
class unique_key_builder {
 public:
  json root;
  json_refusal refusal;

  bool null() { return place(json(nullptr)); }
  bool boolean(bool v) { return place(json(v)); }
  bool number_integer(json::number_integer_t v) { return place(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return place(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return place(json(v)); }
  bool string(json::string_t& v) { return place(json(std::move(v))); }
  bool binary(json::binary_t& v) { return place(json::binary(std::move(v))); }

  bool start_object(std::size_t) {
    open_.push_back(slot(json(json::value_t::object)));
    return true;
  }
  bool key(json::string_t& k) {
    auto& members = open_.back()->get_ref<json::object_t&>();
    auto [it, inserted] = members.emplace(std::move(k), nullptr);
    if (!inserted) {
      refusal.duplicate_key = true;
      refusal.message = "duplicate key " + quoted_key(it->first) + " in " + path();
      return false;
    }
    value_slot_ = &it->second;
    return true;
  }
  bool end_object() {
    open_.pop_back();
    return true;
  }
  bool start_array(std::size_t) {
    open_.push_back(slot(json(json::value_t::array)));
    return true;
  }
  bool end_array() {
    open_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const json::exception& e) {
    refusal.duplicate_key = false;
    refusal.message = e.what();
    return false;
  }

 private:
  std::vector<json*> open_;     // containers being built, outermost first
  json* value_slot_ = nullptr;  // where the value after the last key goes

  // Stores `v` where the next value goes and returns where it went.
  json* slot(json&& v) {
    if (open_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& parent = *open_.back();
    if (parent.is_array()) {
      auto& items = parent.get_ref<json::array_t&>();
      items.push_back(std::move(v));
      return &items.back();
    }
    *value_slot_ = std::move(v);
    return value_slot_;
  }
  bool place(json&& v) {
    slot(std::move(v));
    return true;
  }

  // Where the innermost open object sits: "jobs[1].retry", or "the
  // top-level object"; cut after max_path_in_message bytes. Walks the open
  // containers once; only run on failure.
  std::string path() const {
    std::string out;
    for (std::size_t i = 1; i < open_.size(); ++i) {
      if (out.size() > max_path_in_message) {
        out += "...";
        break;
      }
      const json& parent = *open_[i - 1];
      if (parent.is_array()) {
        const auto& items = parent.get_ref<const json::array_t&>();
        out += "[" + std::to_string(open_[i] - items.data()) + "]";
        continue;
      }
      for (const auto& [name, value] : parent.get_ref<const json::object_t&>())
        if (&value == open_[i]) {
          if (!out.empty()) out += '.';
          out += name.size() <= max_key_in_message ? name
                                                   : name.substr(0, max_key_in_message) + "...";
          break;
        }
    }
    return out.empty() ? "the top-level object" : out;
  }
};

}  // namespace

std::optional<nlohmann::json> parse_json_unique(std::string_view text, json_refusal* why) {
  unique_key_builder builder;
  // strict: nothing but whitespace may follow the value, as in json::parse.
  const bool ok =
      json::sax_parse(text.begin(), text.end(), &builder, nlohmann::json::input_format_t::json,
                      /*strict=*/true, /*ignore_comments=*/false);
  if (!ok) {
    if (why) *why = std::move(builder.refusal);
    return std::nullopt;
  }
  return std::move(builder.root);
}

}  // namespace jobsmith
