# libFuzzer targets for the checkpoint parsers (safetensors header, configs).
# Built only with -DQUANTEVAL_FUZZ=ON and clang (`cmake --preset fuzz`). The
# parser sources are compiled into each target with the fuzzer's coverage
# instrumentation and ASan/UBSan, rather than linked from quanteval_runtime,
# so that libFuzzer sees coverage inside the parsers themselves.
# tests/checkpoint registers the slow-labelled ctest runs when these targets exist.
if(NOT QUANTEVAL_FUZZ)
  return()
endif()
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(WARNING "QUANTEVAL_FUZZ needs clang (libFuzzer); fuzz targets are not built with ${CMAKE_CXX_COMPILER_ID}")
  return()
endif()

set(QUANTEVAL_FUZZ_FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
set(QUANTEVAL_PARSER_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/../safetensors.cpp
  ${CMAKE_CURRENT_LIST_DIR}/../model_config.cpp
  ${CMAKE_CURRENT_LIST_DIR}/../quant_config.cpp
  ${CMAKE_CURRENT_LIST_DIR}/../tensor_table.cpp)

foreach(name safetensors config)
  add_executable(quanteval_fuzz_${name} ${CMAKE_CURRENT_LIST_DIR}/fuzz_${name}.cpp ${QUANTEVAL_PARSER_SOURCES})
  target_include_directories(quanteval_fuzz_${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(quanteval_fuzz_${name} PRIVATE ${QUANTEVAL_FUZZ_FLAGS})
  target_link_options(quanteval_fuzz_${name} PRIVATE ${QUANTEVAL_FUZZ_FLAGS})
  target_link_libraries(quanteval_fuzz_${name} PRIVATE nlohmann_json::nlohmann_json fmt::fmt)
endforeach()
