;; The smallest WASI command: returns from _start at once (exit code 0).
(module
  (memory (export "memory") 1)
  (func (export "_start")))
