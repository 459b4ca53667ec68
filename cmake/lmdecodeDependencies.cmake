# Finds libtorch, fmt and nlohmann-json. fmt and nlohmann fall back to LMDECODE_THIRD_PARTY_HEADERS/fmt
# and /nlohmann (fmt in header-only mode) when no installed package is found. One folder per library,
# so that a fallback for one never shadows the installed headers of another.
find_package(Torch REQUIRED)

find_package(fmt QUIET)
if(fmt_FOUND)
  set(LMDECODE_FMT_TARGET fmt::fmt)
elseif(LMDECODE_THIRD_PARTY_HEADERS)
  add_library(lmdecode_fmt_headers INTERFACE)
  target_include_directories(lmdecode_fmt_headers SYSTEM INTERFACE ${LMDECODE_THIRD_PARTY_HEADERS}/fmt)
  target_compile_definitions(lmdecode_fmt_headers INTERFACE FMT_HEADER_ONLY=1)
  set(LMDECODE_FMT_TARGET $<BUILD_INTERFACE:lmdecode_fmt_headers>)
else()
  message(FATAL_ERROR "fmt not found: install libfmt-dev or set LMDECODE_THIRD_PARTY_HEADERS")
endif()

find_package(nlohmann_json 3 QUIET)
if(nlohmann_json_FOUND)
  set(LMDECODE_JSON_TARGET nlohmann_json::nlohmann_json)
elseif(LMDECODE_THIRD_PARTY_HEADERS)
  add_library(lmdecode_json_headers INTERFACE)
  target_include_directories(lmdecode_json_headers SYSTEM INTERFACE ${LMDECODE_THIRD_PARTY_HEADERS}/nlohmann)
  set(LMDECODE_JSON_TARGET $<BUILD_INTERFACE:lmdecode_json_headers>)
else()
  message(FATAL_ERROR "nlohmann-json not found: install nlohmann-json3-dev or set LMDECODE_THIRD_PARTY_HEADERS")
endif()
