# tests of eval/ (golf-eval) and the scoring library: protocols and compliance checks on a tiny model
# (library level, tests/scoring), and golf-eval end to end on a tiny trained run (CLI).
# The scoring library's tests (tests/scoring ↔ scoring/).
golf_test(scoring_tests scoring/protocols_test.cpp scoring/compliance_test.cpp scoring/lora_test.cpp scoring/planted.cpp
  scoring/validation_test.cpp)
target_link_libraries(scoring_tests PRIVATE golf_validation)
target_precompile_headers(scoring_tests REUSE_FROM golf_core_torch)

# The CLI tests share one tiny trained and packed run, made once per ctest run by the fixture.
set(GOLF_EVAL_FIXTURE_DIR "${CMAKE_CURRENT_BINARY_DIR}/eval_fixture")
add_test(NAME eval_run_fixture COMMAND "${CMAKE_CURRENT_SOURCE_DIR}/eval/make_eval_run.sh" "${GOLF_EVAL_FIXTURE_DIR}")
set_tests_properties(eval_run_fixture PROPERTIES FIXTURES_SETUP eval_run TIMEOUT 600 ENVIRONMENT
  "OMP_NUM_THREADS=1;GOLF_DATA_BIN=$<TARGET_FILE:golf-data>;GOLF_TRAIN_BIN=$<TARGET_FILE:golf-train>;GOLF_PACK_BIN=$<TARGET_FILE:golf-pack>;GOLF_PYTHON=${GOLF_PYTHON};TINY_SHAKESPEARE=${GOLF_SHARED_DIR}/data/tinyshakespeare.txt")

golf_test(eval_cli_tests eval/golf_eval_cli_test.cpp FIXTURE eval_run)
target_link_libraries(eval_cli_tests PRIVATE golf_eval_stage)  # run_eval called directly, beside the CLI
target_compile_definitions(eval_cli_tests PRIVATE GOLF_EVAL_BIN_DEFAULT="$<TARGET_FILE:golf-eval>" GOLF_PACK_BIN_DEFAULT="$<TARGET_FILE:golf-pack>"
                           GOLF_SOURCE_DIR_DEFAULT="${PROJECT_SOURCE_DIR}"
                           GOLF_EVAL_FIXTURE_DIR_DEFAULT="${GOLF_EVAL_FIXTURE_DIR}")
add_dependencies(eval_cli_tests golf-eval golf-pack golf-train golf-data)

# golf-eval on CaseOps data (byte sidecars) and tokenizer identity, on a tiny run it makes itself.
golf_test(caseops_eval_cli_tests eval/caseops_eval_cli_test.cpp)
target_link_libraries(caseops_eval_cli_tests PRIVATE golf_core)
target_compile_definitions(caseops_eval_cli_tests PRIVATE GOLF_EVAL_BIN_DEFAULT="$<TARGET_FILE:golf-eval>"
                           GOLF_PACK_BIN_DEFAULT="$<TARGET_FILE:golf-pack>" GOLF_TRAIN_BIN_DEFAULT="$<TARGET_FILE:golf-train>"
                           GOLF_DATA_BIN_DEFAULT="$<TARGET_FILE:golf-data>")
add_dependencies(caseops_eval_cli_tests golf-eval golf-pack golf-train golf-data)

# The frontier_0427 stack scaled down, end to end (issue 14): train → golf-pack with LQER and
# COMPRESSOR=pergroup → golf-eval sliding + phased TTT with compliance; the artifact round trip. The
# run is made once per ctest run by the fixture.
set(GOLF_FRONTIER_FIXTURE_DIR "${CMAKE_CURRENT_BINARY_DIR}/frontier_fixture")
add_test(NAME frontier_run_fixture COMMAND "${CMAKE_CURRENT_SOURCE_DIR}/eval/make_frontier_run.sh" "${GOLF_FRONTIER_FIXTURE_DIR}")
set_tests_properties(frontier_run_fixture PROPERTIES FIXTURES_SETUP frontier_run TIMEOUT 600 ENVIRONMENT
  "OMP_NUM_THREADS=1;GOLF_DATA_BIN=$<TARGET_FILE:golf-data>;GOLF_TRAIN_BIN=$<TARGET_FILE:golf-train>;GOLF_PACK_BIN=$<TARGET_FILE:golf-pack>;GOLF_PYTHON=${GOLF_PYTHON};GOLF_SOURCE_DIR=${PROJECT_SOURCE_DIR};TINY_SHAKESPEARE=${GOLF_SHARED_DIR}/data/tinyshakespeare.txt")
golf_test(frontier_smoke_tests eval/frontier_smoke_test.cpp FIXTURE frontier_run)
target_link_libraries(frontier_smoke_tests PRIVATE golf_pack_model)
target_compile_definitions(frontier_smoke_tests PRIVATE GOLF_EVAL_BIN_DEFAULT="$<TARGET_FILE:golf-eval>"
                           GOLF_PACK_BIN_DEFAULT="$<TARGET_FILE:golf-pack>" GOLF_TRAIN_BIN_DEFAULT="$<TARGET_FILE:golf-train>"
                           GOLF_SOURCE_DIR_DEFAULT="${PROJECT_SOURCE_DIR}"
                           GOLF_FRONTIER_FIXTURE_DIR_DEFAULT="${GOLF_FRONTIER_FIXTURE_DIR}")
add_dependencies(frontier_smoke_tests golf-eval golf-pack golf-train golf-data)
