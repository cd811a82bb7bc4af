#include "actors/kind_registry.hpp"

#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

// valijson reports a schema it cannot compile by throwing (without this it
// prints and aborts).
#define VALIJSON_USE_EXCEPTIONS 1
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace jobsmith {

struct kind_registry::compiled {
  kind_configured settings;
  nlohmann::json document;  // the schema as parsed (valijson's input)
  std::unique_ptr<valijson::Schema> schema;  // null: no schema
  /// The schema matches strings against regular expressions (below).
  bool uses_regex = false;
};

namespace {

/// valijson checks `pattern`, `patternProperties` and `format` with
/// std::regex, whose matcher recurses once per character or more: a 30 KB
/// string overflowed an 8 MB stack. With such a schema, longer strings and
/// keys are refused before validation (8 KB passed here with room to spare).
constexpr std::size_t max_regex_subject = 4096;

/// Whether any object in `schema` has a key that makes valijson use
/// std::regex (over-approximate: a property named "format" counts too).
bool uses_regex(const nlohmann::json& schema) {
  if (schema.is_array()) {
    for (const auto& v : schema)
      if (uses_regex(v)) return true;
  } else if (schema.is_object()) {
    for (auto it = schema.begin(); it != schema.end(); ++it) {
      if (it.key() == "pattern" || it.key() == "patternProperties" || it.key() == "format")
        return true;
      if (uses_regex(it.value())) return true;
    }
  }
  return false;
}

/// The JSON pointer of the first string or key in `v` longer than
/// max_regex_subject, or nullopt.
std::optional<std::string> long_string_in(const nlohmann::json& v, const std::string& at) {
  if (v.is_string()) {
    if (v.get_ref<const std::string&>().size() > max_regex_subject) return at.empty() ? "/" : at;
  } else if (v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i)
      if (auto where = long_string_in(v[i], at + "/" + std::to_string(i))) return where;
  } else if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it.key().size() > max_regex_subject) return at.empty() ? "/" : at;
      if (auto where = long_string_in(it.value(), at + "/" + it.key())) return where;
    }
  }
  return std::nullopt;
}

/// Compiles schema text; throws std::exception with the reason.
std::unique_ptr<valijson::Schema> compile(const std::string& text, nlohmann::json& document) {
  document = nlohmann::json::parse(text);
  if (!document.is_object() && !document.is_boolean())
    throw std::invalid_argument("a schema is a JSON object or a boolean");
  auto schema = std::make_unique<valijson::Schema>();
  valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
  valijson::adapters::NlohmannJsonAdapter adapter(document);
  // No fetch function: a reference to another document fails to compile.
  parser.populateSchema(adapter, *schema);
  return schema;
}

/// valijson's context ("<root>", "[builder]", "[0]") as a JSON pointer.
std::string pointer_of(const std::vector<std::string>& context) {
  std::string out;
  for (const auto& part : context) {
    if (part == "<root>") continue;
    out += '/';
    out += part.size() >= 2 && part.front() == '[' && part.back() == ']'
               ? part.substr(1, part.size() - 2)
               : part;
  }
  return out.empty() ? "/" : out;
}

}  // namespace

kind_registry::kind_registry() = default;
kind_registry::~kind_registry() = default;

std::optional<std::string> kind_registry::check_schema(const std::string& schema) {
  try {
    nlohmann::json document;
    compile(schema, document);
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string("schema does not compile (JSON Schema draft 7): ") + e.what();
  }
}

namespace {

/// A kind's settings with its schema compiled. A schema this version cannot
/// compile (it compiled when it was configured) is kept uncompiled, and
/// check_payload then refuses every payload rather than none.
std::shared_ptr<kind_registry::compiled> compile_kind(const kind_configured& k) {
  auto c = std::make_shared<kind_registry::compiled>();
  c->settings = k;
  if (!k.schema.empty()) {
    try {
      c->schema = compile(k.schema, c->document);
      c->uses_regex = uses_regex(c->document);
    } catch (const std::exception&) {
    }
  }
  return c;
}

}  // namespace

void kind_registry::reset(const kind_table& kinds) {
  std::map<std::string, std::shared_ptr<const compiled>, std::less<>> fresh;
  std::size_t with_schema = 0;
  for (const auto& [name, k] : kinds) {
    fresh.emplace(name, compile_kind(k));
    with_schema += k.schema.empty() ? 0 : 1;
  }
  std::unique_lock lock(mu_);
  kinds_ = std::move(fresh);
  with_schema_.store(with_schema, std::memory_order_release);
}

void kind_registry::set(const kind_configured& k) {
  std::shared_ptr<const compiled> c;
  if (!k.on_accept.empty() || !k.schema.empty()) c = compile_kind(k);
  std::unique_lock lock(mu_);
  if (c)
    kinds_.insert_or_assign(k.kind, std::move(c));
  else if (auto i = kinds_.find(k.kind); i != kinds_.end())
    kinds_.erase(i);
  std::size_t with_schema = 0;
  for (const auto& [name, entry] : kinds_) with_schema += entry->settings.schema.empty() ? 0 : 1;
  with_schema_.store(with_schema, std::memory_order_release);
}

std::optional<kind_configured> kind_registry::find(std::string_view kind) const {
  std::shared_lock lock(mu_);
  auto i = kinds_.find(kind);
  if (i == kinds_.end()) return std::nullopt;
  return i->second->settings;
}

kind_table kind_registry::all() const {
  std::shared_lock lock(mu_);
  kind_table out;
  for (const auto& [name, c] : kinds_) out.emplace(name, c->settings);
  return out;
}

std::optional<std::string> kind_registry::check_payload(std::string_view kind,
                                                        const std::string& payload) const {
  if (with_schema_.load(std::memory_order_acquire) == 0) return std::nullopt;
  std::shared_ptr<const compiled> c;
  {
    std::shared_lock lock(mu_);
    auto i = kinds_.find(kind);
    if (i == kinds_.end() || i->second->settings.schema.empty()) return std::nullopt;
    c = i->second;
  }
  const std::string prefix = "payload does not match the schema of kind '" + std::string(kind) + "'";
  if (!c->schema) return prefix + ": the schema does not compile in this version";
  auto document = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return prefix + ": the payload is not JSON";
  if (c->uses_regex)
    if (auto where = long_string_in(document, ""))
      return prefix + ": at " + *where + ": a string longer than " +
             std::to_string(max_regex_subject) +
             " bytes, the longest this schema's patterns and formats are checked against";
  valijson::Validator validator;  // strict types: "1" is not an integer
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(document);
  if (validator.validate(*c->schema, target, &results)) return std::nullopt;
  // The deepest error is the most specific (its parents only say that a
  // child failed); the first of equals is the first found.
  valijson::ValidationResults::Error error, best;
  bool found = false;
  while (results.popError(error)) {
    if (!found || error.context.size() > best.context.size()) best = error;
    found = true;
  }
  if (!found) return prefix;
  return prefix + ": at " + pointer_of(best.context) + ": " + best.description;
}

}  // namespace jobsmith
