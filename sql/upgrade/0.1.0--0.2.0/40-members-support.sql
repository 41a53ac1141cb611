-- 0.2.0: segment.members(name, text) gets its planner support function
-- (install part 32), which loads the library of the streaming member scan
-- before the call is planned. segment.members(name, text, date) is new
-- (part 33) and has it already.

-- @function segment.members(name, text)
