"""The README's toy target with a planted bug (one image token too many), for
tests/test_adapter_tour.py::test_toy_target_with_a_planted_bug_fails: num_image_tokens must fail, and no other
stage."""

from docs.examples.toy_target import ToyTarget


class Buggy(ToyTarget):
    def num_image_tokens(self, grid_thw, merge_size=2):
        return super().num_image_tokens(grid_thw, merge_size) + 1


TARGET = Buggy()
