# tests of eval/ (golf-eval): protocols and compliance checks on a tiny model (library level), and
# golf-eval end to end on a tiny trained run (CLI).
golf_test(eval_tests eval/protocols_test.cpp eval/compliance_test.cpp)
target_link_libraries(eval_tests PRIVATE golf_eval)
target_precompile_headers(eval_tests PRIVATE <ATen/ATen.h>)
