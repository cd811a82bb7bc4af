// The refusal the API answers before or instead of an engine call: an HTTP
// status, the machine-readable code of docs/api.md's error body, and a
// message for a person.
#pragma once

#include <string>
#include <utility>

namespace jobsmith::server {

struct api_error {
  int status;
  std::string code;
  std::string message;
};

inline api_error bad_request(std::string message) {
  return {400, "bad_request", std::move(message)};
}

}  // namespace jobsmith::server
