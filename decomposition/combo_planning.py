"""What a ComboGrid game's description implies, by search over its moves: the fewest moves to a
goal, the optimal paths of each problem, the combos each problem needs, the test states, and the
states of played solutions. combogrid.Game inherits these (`Planning`), so a game is described
once and everything here is computed from it.
"""

import functools
from collections import deque

import numpy as np

from decomposition.combo_rules import ComboGridBatch


class Planning:
    """Search over a Game's moves (a mixin of combogrid.Game: rows, columns, is_wall, open_cells,
    combo_deltas, combo_length, combo_names, problems and problem_cells come from the description)."""

    @functools.lru_cache(maxsize=None)
    def distances(self, goal):
        """(rows, columns): the fewest moves from each cell to `goal`, -1 where it cannot be reached
        (breadth-first search over the combos' moves)."""
        distance = np.full((self.rows, self.columns), -1, dtype=np.int64)
        distance[goal] = 0
        queue = deque([goal])
        while queue:
            cell = queue.popleft()
            for dr, dc in self.combo_deltas:  # the cells from which this move reaches `cell`
                r, c = cell[0] - dr, cell[1] - dc
                if 0 <= r < self.rows and 0 <= c < self.columns and not self.is_wall[r, c] and distance[r, c] < 0:
                    distance[r, c] = distance[cell] + 1
                    queue.append((r, c))
        return distance

    def optimal_length(self, starts, goals):
        """The fewest actions from each start to its goal (arrays (..., 2)): one combo per move."""
        starts, goals = np.asarray(starts).reshape(-1, 2), np.asarray(goals).reshape(-1, 2)
        moves = np.array([self.distances(tuple(int(x) for x in g))[tuple(s)] for s, g in zip(starts, goals)])
        return self.combo_length * moves

    def solution_lengths(self):
        """The fewest actions of each training problem, in the problems' order."""
        return [int(self.optimal_length(*self.problem_cells(p))[0]) for p in self.problems]

    def optimal_moves(self, problem):
        """The (cell, combo index) pairs that lie on some optimal path of the problem."""
        start, goal = self.problem_cells(problem)
        to_goal, from_start = self.distances(goal), self.distances(start)
        total = to_goal[start]
        steps = []
        for r, c in self.open_cells:
            if from_start[r, c] < 0 or from_start[r, c] + to_goal[r, c] != total or (r, c) == goal:
                continue
            for k, (dr, dc) in enumerate(self.combo_deltas):
                target = (r + dr, c + dc)
                if (0 <= target[0] < self.rows and 0 <= target[1] < self.columns and not self.is_wall[target]
                        and to_goal[target] == to_goal[r, c] - 1):
                    steps.append(((r, c), k))
        return steps

    def solution_games(self, solutions, problems=None, starts=None):
        """Every state of every solution (actions per problem, in the game's order of problems) as
        one ComboGridBatch, in order, and for each state its (problem, position). With problems and
        starts, solution k is of problems[k] (an index) from the cell starts[k]."""
        agent_cells, goals, buffers, lengths, where = [], [], [], [], []
        problems = range(len(solutions)) if problems is None else problems
        for k, (p, actions) in enumerate(zip(problems, solutions)):
            start, goal = self.problem_cells(self.problems[p])
            played = ComboGridBatch([start if starts is None else starts[k]], [goal], self)
            for j, action in enumerate(actions):
                agent_cells.append(played.agent_cells[0].copy())
                buffers.append(played.buffers[0].copy())
                lengths.append(played.buffer_lengths[0])
                goals.append(goal)
                where.append((p, j))
                played.step(np.array([action]))
        games = ComboGridBatch(np.array(agent_cells), np.array(goals), self)
        games.buffers, games.buffer_lengths = np.array(buffers), np.array(lengths)
        return games, where

    def needed_combos(self, problem):
        """The combos that every optimal path of the problem plays (computed: without such a combo's
        moves, the goal cannot be reached in the optimal number of moves)."""
        start, goal = self.problem_cells(problem)
        moves = self.optimal_moves(problem)
        needed = []
        for k, name in enumerate(self.combo_names):
            reached, frontier = {start}, [start]
            while frontier:  # along optimal moves only, leaving out combo k
                frontier = [(cell[0] + self.combo_deltas[j][0], cell[1] + self.combo_deltas[j][1])
                            for cell in frontier for (at, j) in moves if at == cell and j != k]
                frontier = [cell for cell in dict.fromkeys(frontier) if cell not in reached]
                reached.update(frontier)
            if goal not in reached:
                needed.append(name)
        return tuple(needed)

    def played_combos(self, problem):
        """The combos that some optimal path of the problem plays."""
        used = {k for _, k in self.optimal_moves(problem)}
        return tuple(name for k, name in enumerate(self.combo_names) if k in used)

    @functools.cached_property
    def needed(self):
        """(C, A) boolean: whether problem A needs combo C on every optimal path."""
        return np.array([[name in self.needed_combos(p) for p in self.problems] for name in self.combo_names])

    @functools.cached_property
    def not_needed(self):
        """(C, A) boolean: whether no optimal path of problem A plays combo C. A combo that some but not
        all optimal paths play is in neither group."""
        return np.array([[name not in self.played_combos(p) for p in self.problems] for name in self.combo_names])

    def non_goal_cells(self, problem):
        """Every open cell of the grid but the problem's goal, row-major: where its test states start."""
        _, goal = self.problem_cells(problem)
        return [cell for cell in self.open_cells if cell != goal]

    def test_states(self):
        """Agent and goal cells of every test state: each non-goal open cell of each problem, problem by problem."""
        agent_cells, goals = [], []
        for problem in self.problems:
            _, goal = self.problem_cells(problem)
            cells = self.non_goal_cells(problem)
            agent_cells += cells
            goals += [goal] * len(cells)
        return np.array(agent_cells), np.array(goals)
