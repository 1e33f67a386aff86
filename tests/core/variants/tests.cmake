# tests of the seed attention variants (core/variants)
