# Generates wilcox_vectors.json: inputs and R's wilcox.test results that the
# Go tests in ../wilcoxon_test.go compare against. Run from this directory:
#
#   Rscript gen_wilcox.R
#
# Needs only base R (no packages). Every case sets its own seed, so the file
# is reproducible; the Go tests read the checked-in JSON and need no R.

num <- function(v) {
  if (is.na(v)) stop("unexpected NA")
  if (is.infinite(v)) return(if (v > 0) '"Inf"' else '"-Inf"')
  sprintf("%.17g", v)
}
vec <- function(v) paste0("[", paste(vapply(v, num, ""), collapse = ", "), "]")

cases <- list()
add <- function(name, x, y, alternative = "two.sided", conf.level = 0.98, exact = NULL) {
  r <- withCallingHandlers(
    wilcox.test(x, y, alternative = alternative, conf.int = TRUE,
                conf.level = conf.level, exact = exact),
    warning = function(w) invokeRestart("muffleWarning"))
  exact_str <- if (is.null(exact)) "null" else if (exact) "true" else "false"
  cases[[length(cases) + 1]] <<- paste0(
    "    {\n",
    '      "name": "', name, '",\n',
    '      "x": ', vec(x), ",\n",
    '      "y": ', vec(y), ",\n",
    '      "alternative": "', alternative, '",\n',
    '      "conf_level": ', num(conf.level), ",\n",
    '      "exact": ', exact_str, ",\n",
    '      "method": "', r$method, '",\n',
    '      "statistic": ', num(unname(r$statistic)), ",\n",
    '      "p_value": ', num(r$p.value), ",\n",
    '      "estimate": ', num(unname(r$estimate)), ",\n",
    '      "conf_int": ', vec(as.numeric(r$conf.int)), ",\n",
    '      "achieved_conf_level": ', num(attr(r$conf.int, "conf.level")), "\n",
    "    }")
}

# Exact distribution: both samples under 50, no ties.
set.seed(1);  add("exact_small_two_sided", rnorm(8), rnorm(10, 0.5))
set.seed(2);  add("exact_small_greater", rnorm(12, 1), rnorm(9), "greater", 0.95)
set.seed(3);  add("exact_small_less", rnorm(7), rnorm(11, 1), "less", 0.90)
set.seed(4);  add("exact_unequal_3_vs_12", rnorm(3, 2), rnorm(12))
add("exact_unachievable_level", c(1.5, 2.5), c(3.1, 4.2))
set.seed(6);  add("exact_one_vs_five", 0.3, rnorm(5), conf.level = 0.95)
set.seed(7);  add("exact_49_vs_49", rnorm(49, 0.3), rnorm(49))
set.seed(8);  add("exact_fully_separated", rnorm(10, 10), rnorm(10))
set.seed(9);  add("exact_same_distribution", runif(20), runif(25))
set.seed(22); add("exact_large_magnitude", 1e6 + rnorm(40, 50, 200), 1e6 + rnorm(45, 0, 200))
set.seed(27); add("exact_negative_shift_99", rnorm(15, -2), rnorm(20), conf.level = 0.99)
set.seed(24); add("exact_forced_large", rnorm(55, 0.5), rnorm(60), conf.level = 0.95, exact = TRUE)

# Normal approximation because of ties.
set.seed(10); add("ties_rounded", round(rnorm(15, 0.5), 1), round(rnorm(12), 1))
set.seed(11); add("ties_counts_greater", rpois(20, 5), rpois(18, 3), "greater", 0.95)
set.seed(12); add("ties_counts_less", rpois(25, 2), rpois(30, 4), "less")
set.seed(16); v <- rnorm(20); add("identical_samples", v, v)
set.seed(21); add("heavy_ties_unequal", sample(1:5, 200, TRUE), sample(2:6, 37, TRUE))
set.seed(25); add("error_rate_series", rbinom(30, 1000, 0.02) / 1000, rbinom(30, 1000, 0.01) / 1000)
set.seed(26); add("constant_vs_varied", rep(3, 12), rnorm(15, 3))
set.seed(29); add("exact_requested_with_ties", round(rnorm(12), 1), round(rnorm(14, 0.8), 1), exact = TRUE)

# Normal approximation because a sample has 50 or more values.
set.seed(13); add("normal_60_vs_80", rnorm(60), rnorm(80, 0.2))
set.seed(14); add("normal_latency_shift", rlnorm(100, log(120), 0.3), rlnorm(100, log(100), 0.3))
set.seed(15); add("normal_same_distribution", rexp(75), rexp(90))
set.seed(17); add("normal_greater", rnorm(70, 0.4), rnorm(55), "greater")
set.seed(18); add("normal_less", rnorm(52, -0.1), rnorm(64), "less", 0.95)
set.seed(20); add("normal_50_vs_30", rnorm(50), rnorm(30, 1))
add("normal_interval_at_range_ends", 1, 2:60, conf.level = 0.95)

# Normal approximation forced on small samples (the branch Kayenta uses).
set.seed(23); add("normal_forced_small", rnorm(10, 1), rnorm(10), exact = FALSE)
set.seed(28); add("normal_forced_small_greater", rnorm(6, 0.5), rnorm(9), "greater", exact = FALSE)

out <- paste0(
  "{\n",
  '  "generator": "gen_wilcox.R",\n',
  '  "r_version": "', R.version.string, '",\n',
  '  "cases": [\n', paste(unlist(cases), collapse = ",\n"), "\n  ]\n}\n")
writeLines(out, "wilcox_vectors.json", sep = "")
cat(sprintf("wrote %d cases\n", length(cases)))
