# tests of scripts/ (significance, plots, record assembly)
