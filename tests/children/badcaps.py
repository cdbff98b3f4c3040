"""A target whose capabilities declaration is wrong (rotary "quaternion", not one of the allowed forms), for
tests/test_verify.py::test_bad_capabilities_declaration_is_one_usage_line: verify must refuse it with one usage
line that names the key and the allowed values."""


class T:
    capabilities = {"rotary": "quaternion"}

    def cu_seqlens(self, grid_thw):
        return grid_thw


TARGET = T()
