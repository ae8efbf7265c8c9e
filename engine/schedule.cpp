// engine/schedule.cpp: being written.
