# R's answers for the proportion tests in ../proportion_test.go, which runs
#
#   Rscript rref.R prop CASES   # a line "xc nc xs ns conf" per case
#   Rscript rref.R srm CASES    # a line "counts;shares" per case, each
#                               # comma-separated
#
# and reads one line of numbers back per case, written to 17 digits: for
# prop, prop.test(c(xc, xs), c(nc, ns), conf.level = conf, correct = FALSE)'s
# p-value, interval, X-squared and both estimates; for srm,
# chisq.test(counts, p = shares, rescale.p = TRUE)'s X-squared, degrees of
# freedom and p-value. Base R only.

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2) stop("usage: rref.R prop|srm CASES")
quiet <- function(expr) withCallingHandlers(expr, warning = function(w) invokeRestart("muffleWarning"))
num <- function(v) paste(sprintf("%.17g", as.numeric(v)), collapse = " ")

lines <- readLines(args[2])
for (line in lines[nzchar(lines)]) {
  if (args[1] == "prop") {
    v <- as.numeric(strsplit(line, " ")[[1]])
    r <- quiet(prop.test(c(v[1], v[3]), c(v[2], v[4]), conf.level = v[5], correct = FALSE))
    cat(num(c(r$p.value, r$conf.int, r$statistic, r$estimate)), "\n")
  } else if (args[1] == "srm") {
    parts <- strsplit(line, ";")[[1]]
    counts <- as.numeric(strsplit(parts[1], ",")[[1]])
    shares <- as.numeric(strsplit(parts[2], ",")[[1]])
    r <- quiet(chisq.test(counts, p = shares, rescale.p = TRUE))
    cat(num(c(r$statistic, r$parameter, r$p.value)), "\n")
  } else {
    stop("unknown mode ", args[1])
  }
}
