// The C library's math functions, called at run time exactly as CPython calls them.
// The reference engine must reproduce Python's arithmetic to the last bit, and a
// compiler may otherwise fold pow(x, 2.0) into x*x or pow(x, 0.5) into sqrt(x), which
// can differ in the last bit from what libm's pow returns. pymath.cpp is compiled with
// -fno-builtin so every call here really reaches libm.
#pragma once

namespace microgpt::pymath {

// pow(x, y) exactly as libm returns it (for y = 2 and y = 0.5 often without calling it).
double pow(double x, double y);
// Always the libm call (for tests).
double libm_pow(double x, double y);
double exp(double x);
double log(double x);
double cos(double x);
double sin(double x);
double sqrt(double x);

}  // namespace microgpt::pymath
