// The Python module pytexsynth._C: empty by design. Importing it loads the shared library,
// whose static initialisers register the ops under torch.ops.pytexsynth.
#include <Python.h>

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",  // name
      "pytexsynth kernels; use them through torch.ops.pytexsynth or pytexsynth.ops",
      -1,    // no per-module state
      nullptr,
  };
  return PyModule_Create(&module_def);
}
}
