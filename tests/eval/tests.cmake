# tests of eval/ (golf-eval)
