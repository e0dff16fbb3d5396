// Package stats holds the statistics behind pipit's canary verdicts. It is
// pure: numbers in, numbers out, no I/O, clocks or global random state.
//
// It has these parts:
//
//   - WilcoxonTest, a two-sample Wilcoxon rank-sum (Mann-Whitney U) test that
//     reproduces R's wilcox.test(x, y, conf.int = TRUE): statistic, p-value,
//     Hodges-Lehmann shift estimate and confidence interval, exact or by the
//     normal approximation, decided the way R decides.
//   - Classify and Score, a Kayenta-style judge: each metric is classified
//     Pass, High, Low, Nodata, NodataFail or Error from the rank-sum confidence
//     interval, then weighted group scores give a 0-100 score that thresholds
//     turn into Pass, Marginal or Fail.
//   - RateTest, a sequential test of two event rates (canary errors against
//     stable errors) that may be looked at after every update without
//     raising its false-alarm probability above alpha.
//   - For proportions of successes such as conversions, where a higher
//     proportion is better: ProportionTest, the two-proportion z-test of R's
//     prop.test(correct = FALSE) with a Better, Worse, NoDifference or
//     NotEnoughData verdict; ProportionSequentialTest, its always-valid
//     counterpart (the RateTest's mixture, at A/B testing's defaults) that an
//     experiment may consult at every check; and SampleRatioTest, the
//     sample-ratio-mismatch check of assignment counts against the planned
//     split.
package stats
