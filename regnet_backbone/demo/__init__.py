"""What ``make demo`` needs beside the library: synthetic data and pictures of the results."""
