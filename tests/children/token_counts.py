"""Two targets of one stage, num_image_tokens, for tests/test_verify.py's runs of `vitspec verify` from a user's
folder: TARGET counts right (test_default_runs_leave_no_files_in_the_users_directory: a run that passes), OFF_BY_ONE
counts one token too many (test_reproduce_command_works_where_verify_ran: a run that fails, whose reproduce:
command must fail again)."""

import numpy as np


class Tokens:
    def __init__(self, name: str, plus: int):
        self.name, self.plus = name, plus

    def num_image_tokens(self, grid_thw, merge_size=2):
        g = np.asarray(grid_thw, dtype=np.int64).reshape(-1, 3)
        return g[:, 0] * g[:, 1] * g[:, 2] // (merge_size * merge_size) + self.plus


TARGET = Tokens("good", 0)
OFF_BY_ONE = Tokens("bad", 1)
