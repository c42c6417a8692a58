/* harness: a minimal unit-test harness. Each tests/unit/test_<module>.c is one
 * executable: it defines test functions with FV_TEST(name), lists them in
 * FV_TESTS(...), and exits 0 when all pass, 1 otherwise. The runner
 * (tests/run) counts executables; the executable prints one line per case.
 *
 *   FV_TEST(roundtrip) { FV_CHECK(1 + 1 == 2); FV_CHECK_EQ(x, 3); }
 *   FV_TESTS(roundtrip, other)
 */
#ifndef FV_TEST_HARNESS_H
#define FV_TEST_HARNESS_H

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct fv_test_ctx {
	int failures;
	const char *name;
};

#define FV_TEST(n) static void fv_test_##n(struct fv_test_ctx *fv_t_)

#define FV_CHECK(cond)                                                                                      \
	do {                                                                                                \
		if (!(cond)) {                                                                              \
			fprintf(stderr, "  %s:%d: %s: check failed: %s\n", __FILE__, __LINE__, fv_t_->name, \
				#cond);                                                                     \
			fv_t_->failures++;                                                                  \
		}                                                                                           \
	} while (0)

#define FV_CHECK_EQ(a, b)                                                                                   \
	do {                                                                                                \
		long long fv_a_ = (long long)(a), fv_b_ = (long long)(b);                                   \
		if (fv_a_ != fv_b_) {                                                                       \
			fprintf(stderr, "  %s:%d: %s: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, \
				fv_t_->name, #a, #b, fv_a_, fv_b_);                                         \
			fv_t_->failures++;                                                                  \
		}                                                                                           \
	} while (0)

/* Stop the current test case (after a failed precondition). */
#define FV_REQUIRE(cond)                                                                             \
	do {                                                                                         \
		if (!(cond)) {                                                                       \
			fprintf(stderr, "  %s:%d: %s: requirement failed: %s\n", __FILE__, __LINE__, \
				fv_t_->name, #cond);                                                 \
			fv_t_->failures++;                                                           \
			return;                                                                      \
		}                                                                                    \
	} while (0)

/* A new directory for a test, $TMPDIR/fv-NAME-XXXXXX (/tmp without
 * TMPDIR); its path goes to dir (n bytes). Returns 0, or -1 when it cannot
 * be made or does not fit. */
static inline int fv_test_tmpdir(char *dir, size_t n, const char *name)
{
	const char *t = getenv("TMPDIR");
	int len = snprintf(dir, n, "%s/fv-%s-XXXXXX", t && *t ? t : "/tmp", name);
	if (len < 0 || (size_t)len >= n)
		return -1;
	return mkdtemp(dir) ? 0 : -1;
}

static inline int fv_test_rm_one_(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* Remove dir and everything below it (links not followed). */
static inline int fv_test_rmtree(const char *dir)
{
	return nftw(dir, fv_test_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
}

struct fv_test_case {
	const char *name;
	void (*fn)(struct fv_test_ctx *);
};

#define FV_T_ENTRY(n) {#n, fv_test_##n},
#define FV_T_MAP1(m, x) m(x)
#define FV_T_EXPAND(...) __VA_ARGS__

static inline int fv_test_main(const struct fv_test_case *cases, size_t n, int argc, char **argv)
{
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		struct fv_test_ctx t = {0, cases[i].name};
		cases[i].fn(&t);
		printf("%s %s\n", t.failures ? "FAIL" : "ok  ", cases[i].name);
		fflush(stdout);
		if (t.failures)
			failed++;
	}
	return failed ? 1 : 0;
}

/* FV_TESTS(a, b, c): up to 20 cases. */
#define FV_T_E1(a) FV_T_ENTRY(a)
#define FV_T_E2(a, ...) FV_T_ENTRY(a) FV_T_E1(__VA_ARGS__)
#define FV_T_E3(a, ...) FV_T_ENTRY(a) FV_T_E2(__VA_ARGS__)
#define FV_T_E4(a, ...) FV_T_ENTRY(a) FV_T_E3(__VA_ARGS__)
#define FV_T_E5(a, ...) FV_T_ENTRY(a) FV_T_E4(__VA_ARGS__)
#define FV_T_E6(a, ...) FV_T_ENTRY(a) FV_T_E5(__VA_ARGS__)
#define FV_T_E7(a, ...) FV_T_ENTRY(a) FV_T_E6(__VA_ARGS__)
#define FV_T_E8(a, ...) FV_T_ENTRY(a) FV_T_E7(__VA_ARGS__)
#define FV_T_E9(a, ...) FV_T_ENTRY(a) FV_T_E8(__VA_ARGS__)
#define FV_T_E10(a, ...) FV_T_ENTRY(a) FV_T_E9(__VA_ARGS__)
#define FV_T_E11(a, ...) FV_T_ENTRY(a) FV_T_E10(__VA_ARGS__)
#define FV_T_E12(a, ...) FV_T_ENTRY(a) FV_T_E11(__VA_ARGS__)
#define FV_T_E13(a, ...) FV_T_ENTRY(a) FV_T_E12(__VA_ARGS__)
#define FV_T_E14(a, ...) FV_T_ENTRY(a) FV_T_E13(__VA_ARGS__)
#define FV_T_E15(a, ...) FV_T_ENTRY(a) FV_T_E14(__VA_ARGS__)
#define FV_T_E16(a, ...) FV_T_ENTRY(a) FV_T_E15(__VA_ARGS__)
#define FV_T_E17(a, ...) FV_T_ENTRY(a) FV_T_E16(__VA_ARGS__)
#define FV_T_E18(a, ...) FV_T_ENTRY(a) FV_T_E17(__VA_ARGS__)
#define FV_T_E19(a, ...) FV_T_ENTRY(a) FV_T_E18(__VA_ARGS__)
#define FV_T_E20(a, ...) FV_T_ENTRY(a) FV_T_E19(__VA_ARGS__)
#define FV_T_GET(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, _20, \
		 M, ...)                                                                                    \
	M
#define FV_TESTS(...)                                                                                        \
	int main(int argc, char **argv)                                                                      \
	{                                                                                                    \
		static const struct fv_test_case cases[] = {FV_T_GET(                                        \
			__VA_ARGS__, FV_T_E20, FV_T_E19, FV_T_E18, FV_T_E17, FV_T_E16, FV_T_E15, FV_T_E14,   \
			FV_T_E13, FV_T_E12, FV_T_E11, FV_T_E10, FV_T_E9, FV_T_E8, FV_T_E7, FV_T_E6, FV_T_E5, \
			FV_T_E4, FV_T_E3, FV_T_E2, FV_T_E1)(__VA_ARGS__)};                                   \
		return fv_test_main(cases, sizeof cases / sizeof cases[0], argc, argv);                      \
	}

#endif
