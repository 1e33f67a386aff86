# tests of the seed attention variants (core/variants)
golf_test(variants_tests
  model/variants/moa_test.cpp
  model/variants/naive.cpp
  model/variants/smat_test.cpp
  model/variants/variant_model_test.cpp
  model/variants/variant_pack_test.cpp)
target_link_libraries(variants_tests PRIVATE golf_train golf_pack_model)
