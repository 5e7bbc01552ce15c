// EXPECT_FAILS(call, status, needle): the call returns `status`, and the library's last
// error message names what is wrong (contains `needle`) on one line.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "groupnorm/groupnorm.h"

#define EXPECT_FAILS(call, status, needle)                                             \
    do {                                                                                 \
        gn_status st_ = (call);                                                          \
        EXPECT_EQ(st_, status) << gn_status_string(st_) << ": " << gn_last_error_message(); \
        EXPECT_NE(std::string(gn_last_error_message()).find(needle), std::string::npos)  \
            << "message: " << gn_last_error_message();                                  \
        EXPECT_EQ(std::string(gn_last_error_message()).find('\n'), std::string::npos);   \
    } while (0)
