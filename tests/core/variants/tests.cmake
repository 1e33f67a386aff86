# tests of the seed attention variants (core/variants)
golf_test(variants_tests
  core/variants/moa_test.cpp
  core/variants/naive.cpp
  core/variants/smat_test.cpp
  core/variants/variant_model_test.cpp
  core/variants/variant_pack_test.cpp)
target_link_libraries(variants_tests PRIVATE golf_train golf_pack_model)
