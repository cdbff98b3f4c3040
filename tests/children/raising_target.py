"""A target whose num_image_tokens raises (an error inside the target, not a check's mismatch), for
tests/test_verify.py::test_an_exception_inside_the_target_gets_a_reproduce_command: the run must still print a
reproduce: command under the error."""


class Raising:
    name, dtype = "raising", "float64"

    def num_image_tokens(self, grid_thw, merge_size=2):
        raise RuntimeError("kernel exploded")


TARGET = Raising()
