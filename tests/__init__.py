"""The test suite, one folder per feature; ``support`` holds the helpers they share."""
