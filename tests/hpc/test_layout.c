/* test_layout.c — fold/rank layout (DESIGN §5) and launcher checks, without MPI: for every world
 * size and fold count, every fold is trained by exactly one group, groups partition the ranks, and
 * SLURM_NTASKS mismatches fail loudly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "hpc/comm.h"

#include <stdlib.h>
#include <string.h>

static void test_every_fold_exactly_once(void **state) {
    (void)state;
    sq_status st;
    for (int W = 1; W <= 9; W++) {
        for (int K = 2; K <= 7; K++) {
            int fold_owner_group[SQ_MAX_FOLDS];
            for (int f = 0; f < K; f++)
                fold_owner_group[f] = -1;
            int group_members[SQ_MAX_FOLDS] = {0};
            int ngroups = -1;
            for (int r = 0; r < W; r++) {
                sq_layout lay;
                assert_int_equal(sq_layout_plan(W, K, r, &lay, &st), SQ_OK);
                if (ngroups < 0) ngroups = lay.ngroups;
                assert_int_equal(lay.ngroups, ngroups);
                assert_int_equal(lay.ngroups, W >= K ? K : W);
                assert_true(lay.group >= 0 && lay.group < lay.ngroups);
                assert_true(lay.group_rank >= 0 && lay.group_rank < lay.group_size);
                group_members[lay.group]++;
                for (int i = 0; i < lay.nmine; i++) {
                    int f = lay.mine[i];
                    assert_true(f >= 0 && f < K);
                    /* all ranks of a group own the same folds; no two groups share one */
                    if (fold_owner_group[f] == -1)
                        fold_owner_group[f] = lay.group;
                    else
                        assert_int_equal(fold_owner_group[f], lay.group);
                }
            }
            for (int f = 0; f < K; f++)
                assert_true(fold_owner_group[f] >= 0);
            for (int gi = 0; gi < ngroups; gi++) {
                /* planned group sizes add up and agree with the members */
                sq_layout lay;
                int some_rank = -1;
                for (int r = 0; r < W && some_rank < 0; r++) {
                    sq_layout_plan(W, K, r, &lay, &st);
                    if (lay.group == gi) some_rank = r;
                }
                assert_true(some_rank >= 0);
                assert_int_equal(lay.group_size, group_members[gi]);
            }
        }
    }
}

static void test_specific_layouts(void **state) {
    (void)state;
    sq_status st;
    sq_layout lay;
    /* W = 2 < K = 5: round robin 0,2,4 and 1,3 */
    assert_int_equal(sq_layout_plan(2, 5, 0, &lay, &st), SQ_OK);
    assert_int_equal(lay.nmine, 3);
    assert_int_equal(lay.mine[0], 0);
    assert_int_equal(lay.mine[1], 2);
    assert_int_equal(lay.mine[2], 4);
    assert_int_equal(lay.group_size, 1);
    assert_int_equal(sq_layout_plan(2, 5, 1, &lay, &st), SQ_OK);
    assert_int_equal(lay.nmine, 2);
    assert_int_equal(lay.mine[1], 3);
    /* W = 4 >= K = 2: groups {0,2} and {1,3}, two data-parallel ranks each */
    assert_int_equal(sq_layout_plan(4, 2, 3, &lay, &st), SQ_OK);
    assert_int_equal(lay.group, 1);
    assert_int_equal(lay.group_rank, 1);
    assert_int_equal(lay.group_size, 2);
    assert_int_equal(lay.mine[0], 1);
    /* K = 0: everyone in one group */
    assert_int_equal(sq_layout_plan(3, 0, 2, &lay, &st), SQ_OK);
    assert_int_equal(lay.ngroups, 1);
    assert_int_equal(lay.group_size, 3);
    assert_int_equal(lay.group_rank, 2);
    assert_int_equal(lay.mine[0], -1);
}

static void test_bad_layouts(void **state) {
    (void)state;
    sq_status st;
    sq_layout lay;
    assert_int_equal(sq_layout_plan(2, 1, 0, &lay, &st), SQ_ERR_USAGE);
    assert_non_null(strstr(st.msg, "folds = 1"));
    assert_int_equal(sq_layout_plan(2, -3, 0, &lay, &st), SQ_ERR_USAGE);
    assert_int_equal(sq_layout_plan(2, 5, 2, &lay, &st), SQ_ERR_RANGE);
    assert_int_equal(sq_layout_plan(0, 5, 0, &lay, &st), SQ_ERR_RANGE);
}

static void test_launcher_checks(void **state) {
    (void)state;
    sq_status st;
    assert_int_equal(sq_check_world_size(4, NULL, &st), SQ_OK);
    assert_int_equal(sq_check_world_size(4, "4", &st), SQ_OK);
    assert_int_equal(sq_check_world_size(1, "4", &st), SQ_ERR_MPI);
    assert_non_null(strstr(st.msg, "MPI world size 1 differs from SLURM_NTASKS=4"));
    assert_int_equal(sq_check_world_size(1, "four", &st), SQ_ERR_MPI);
    assert_non_null(strstr(st.msg, "SLURM_NTASKS='four'"));
    unsetenv("SLURM_LOCALID");
    unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
    unsetenv("MPI_LOCALRANKID");
    assert_int_equal(sq_local_rank_from_env(), -1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "2", 1);
    assert_int_equal(sq_local_rank_from_env(), 2);
    setenv("SLURM_LOCALID", "3", 1); /* Slurm wins */
    assert_int_equal(sq_local_rank_from_env(), 3);
    setenv("SLURM_LOCALID", "x", 1); /* garbage is ignored */
    assert_int_equal(sq_local_rank_from_env(), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_fold_exactly_once),
        cmocka_unit_test(test_specific_layouts),
        cmocka_unit_test(test_bad_layouts),
        cmocka_unit_test(test_launcher_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
