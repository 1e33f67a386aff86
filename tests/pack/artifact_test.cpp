// tests/pack/artifact_test.cpp — (being written)
